// The image the worker app runs now, so that a re-provision (`azd provision`, or `azd up` after `azd deploy`) keeps
// the image azd deployed instead of resetting it to the placeholder. azd sets SERVICE_WORKER_RESOURCE_EXISTS once the
// app exists. A separate module because a template cannot both read and declare the same resource.

@description('Whether the worker app already exists.')
param exists bool

@description('Name of the worker Container App.')
param name string

@description('Image to use when the app does not exist yet (azd replaces it on deploy).')
param placeholderImage string

resource existingApp 'Microsoft.App/containerApps@2025-01-01' existing = if (exists) {
  name: name
}

output image string = exists ? existingApp!.properties.template.containers[0].image : placeholderImage
