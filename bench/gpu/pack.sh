#!/usr/bin/env bash
# Makes the GPU check's pieces from a build on this machine (Linux x86-64 with the .NET SDK and redis-server):
#
#   bench/gpu/pack.sh OUT_DIR [PIECE_MiB]      (default 58: a piece plus the ~3 MB tree fit in a 64 MiB transfer)
#
# OUT_DIR gets bundle.tar.00, .01, ... and bundle.sha256 (each piece and the whole bundle.tar), which
# bench/gpu/check.sh joins and verifies on the GPU machine. bundle.tar holds:
#   base.tar.xz     si/app (framework-dependent publish of the DevHost, with the Worker beside it, and of
#                   bench/ServerlessInference.Bench.Gpu: ONNX Runtime 1.31 CUDA build and DemoModels/resnet18.onnx),
#                   si/dotnet (this machine's dotnet host and shared runtimes: no SDK), si/redis (redis-server and the
#                   libraries ldd names, bar glibc's, libstdc++ and libgcc_s, which the target has)
#   libonnxruntime_providers_cuda.so.xz   the 284 MB CUDA provider, compressed on its own
#   SHA256SUMS      of base.tar and libonnxruntime_providers_cuda.so, checked after decompression
# XZ_OPTS (default "-9e -T2") sets the compression; CUDA_XZ=file reuses an earlier .xz of the same provider.
set -euo pipefail
out=${1:?usage: pack.sh OUT_DIR [PIECE_MiB]}
piece=${2:-58}
xz_opts=${XZ_OPTS:--9e -T2}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"; out=$(cd "$out" && pwd)
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/si/app" "$stage/si/dotnet/shared" "$stage/si/redis/lib"

for p in src/ServerlessInference.DevHost bench/ServerlessInference.Bench.Gpu; do
    dotnet publish "$repo/$p" -c Release -r linux-x64 --self-contained false -p:UseAppHost=false -v quiet -o "$stage/si/app"
done
# Not needed there: symbols, and the TensorRT provider (loaded only when asked for).
rm -f "$stage"/si/app/*.pdb "$stage/si/app/libonnxruntime_providers_tensorrt.so"
cp "$repo"/bench/gpu/{check.sh,load.py,report.py} "$stage/si/"

dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
cp -a "$dotnet_root/dotnet" "$dotnet_root/host" "$stage/si/dotnet/"
cp -a "$dotnet_root/shared/Microsoft.NETCore.App" "$dotnet_root/shared/Microsoft.AspNetCore.App" "$stage/si/dotnet/shared/"

redis=$(command -v redis-server)
cp -L "$redis" "$stage/si/redis/redis-server"
ldd "$redis" | awk '/=> \// {print $3}' | grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|libdl|librt|libpthread)\.so' \
    | xargs -r cp -L -t "$stage/si/redis/lib/"

cuda=$stage/si/app/libonnxruntime_providers_cuda.so
[[ -f $cuda ]] || { echo "no libonnxruntime_providers_cuda.so in the publish output" >&2; exit 1; }
bundle=$stage/bundle; mkdir "$bundle"
mv "$cuda" "$bundle/libonnxruntime_providers_cuda.so"
tar -C "$stage" -cf "$bundle/base.tar" si
(cd "$bundle" && sha256sum base.tar libonnxruntime_providers_cuda.so >SHA256SUMS)
if [[ -n ${CUDA_XZ:-} ]]; then
    [[ $(xz -dc "$CUDA_XZ" | sha256sum | cut -d' ' -f1) == $(sha256sum <"$bundle/libonnxruntime_providers_cuda.so" | cut -d' ' -f1) ]] \
        || { echo "$CUDA_XZ is not this provider" >&2; exit 1; }
    cp "$CUDA_XZ" "$bundle/libonnxruntime_providers_cuda.so.xz"; rm "$bundle/libonnxruntime_providers_cuda.so"
else
    xz $xz_opts "$bundle/libonnxruntime_providers_cuda.so"
fi
xz $xz_opts "$bundle/base.tar"
tar -C "$bundle" -cf "$stage/bundle.tar" SHA256SUMS base.tar.xz libonnxruntime_providers_cuda.so.xz
rm -f "$out"/bundle.tar.* "$out/bundle.sha256"
split -b "${piece}M" -d -a 2 "$stage/bundle.tar" "$out/bundle.tar."
(cd "$out" && sha256sum bundle.tar.[0-9]* >bundle.sha256 && echo "$(sha256sum <"$stage/bundle.tar" | cut -d' ' -f1)  bundle.tar" >>bundle.sha256)
ls -l "$bundle" "$out"
