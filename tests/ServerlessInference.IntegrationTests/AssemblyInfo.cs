// The suite starts worker processes that share the machine's cores: one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
