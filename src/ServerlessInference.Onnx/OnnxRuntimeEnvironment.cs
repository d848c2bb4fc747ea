using Microsoft.ML.OnnxRuntime;

namespace ServerlessInference.Onnx;

/// <summary>The process-wide ONNX Runtime environment: one shared intra-op thread pool, one shared CPU arena,
/// and the CUDA probe result. Created once; later callers get the first one.</summary>
internal static class OnnxRuntimeEnvironment
{
    private static readonly Lock s_lock = new();
    private static readonly Dictionary<int, CudaProbe> s_cudaProbes = [];
    private static EnvironmentState? s_state;

    public static EnvironmentState GetOrCreate(OnnxEngineOptions options)
    {
        lock (s_lock)
        {
            return s_state ??= Create(options);
        }
    }

    /// <summary>Tries CUDA on <paramref name="deviceId"/> once per process: options, provider, and a tiny session
    /// run, because <see cref="OrtEnv.GetAvailableProviders"/> lists CUDA even where it cannot load.</summary>
    public static CudaProbe ProbeCuda(EnvironmentState state, int deviceId)
    {
        lock (s_lock)
        {
            if (!s_cudaProbes.TryGetValue(deviceId, out var probe))
            {
                probe = RunCudaProbe(state, deviceId);
                s_cudaProbes[deviceId] = probe;
            }

            return probe;
        }
    }

    /// <summary>Session options every session of the process starts from.</summary>
    public static SessionOptions CreateSessionOptions(EnvironmentState state, OnnxEngineOptions options)
    {
        var sessionOptions = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        try
        {
            if (state.GlobalThreadPool)
            {
                sessionOptions.DisablePerSessionThreads();
            }
            else
            {
                sessionOptions.IntraOpNumThreads = options.IntraOpThreads;
                sessionOptions.InterOpNumThreads = 1;
                sessionOptions.AddSessionConfigEntry("session.intra_op.allow_spinning", options.AllowSpinning ? "1" : "0");
            }

            if (state.SharedArena)
            {
                sessionOptions.AddSessionConfigEntry("session.use_env_allocators", "1");
            }

            return sessionOptions;
        }
        catch
        {
            sessionOptions.Dispose();
            throw;
        }
    }

    public static void AppendCuda(SessionOptions sessionOptions, int deviceId)
    {
        using var cudaOptions = new OrtCUDAProviderOptions();
        cudaOptions.UpdateOptions(new Dictionary<string, string>
        {
            ["device_id"] = deviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        sessionOptions.AppendExecutionProvider_CUDA(cudaOptions);
    }

    private static EnvironmentState Create(OnnxEngineOptions options)
    {
        if (OrtEnv.IsCreated)
        {
            // Something touched OrtEnv first (a direct InferenceSession): its thread settings stand, so sessions
            // keep their own pools.
            return new EnvironmentState(OrtEnv.Instance(), GlobalThreadPool: false, SharedArena: false,
                options.IntraOpThreads, options.AllowSpinning, Preexisting: true);
        }

        OrtEnv env;
        using (var threading = new OrtThreadingOptions
        {
            GlobalIntraOpNumThreads = options.IntraOpThreads,
            GlobalInterOpNumThreads = 1,
            GlobalSpinControl = options.AllowSpinning,
        })
        {
            var creationOptions = new EnvironmentCreationOptions
            {
                logId = "ServerlessInference",
                logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING,
                threadOptions = threading,
            };
            env = OrtEnv.CreateInstanceWithOptions(ref creationOptions);
        }

        var sharedArena = false;
        try
        {
            using var memoryInfo = new OrtMemoryInfo(OrtMemoryInfo.allocatorCPU, OrtAllocatorType.ArenaAllocator, 0, OrtMemType.Default);
            using var arenaConfig = new OrtArenaCfg(0, -1, -1, -1);
            env.CreateAndRegisterAllocator(memoryInfo, arenaConfig);
            sharedArena = true;
        }
        catch (OnnxRuntimeException)
        {
            // Sessions then keep their own arenas; correct, only less memory-frugal.
        }

        return new EnvironmentState(env, GlobalThreadPool: true, sharedArena, options.IntraOpThreads, options.AllowSpinning, Preexisting: false);
    }

    private static CudaProbe RunCudaProbe(EnvironmentState state, int deviceId)
    {
        try
        {
            using var sessionOptions = CreateSessionOptions(state, new OnnxEngineOptions());
            AppendCuda(sessionOptions, deviceId);
            using var session = new InferenceSession(OnnxModelProtos.ProbeModel(), sessionOptions);
            float[] input = [1, 2, 3, 4];
            using var inputValue = OrtValue.CreateTensorValueFromMemory(input, [1, 4]);
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, ["x"], [inputValue], ["y"]);
            var y = outputs[0].GetTensorDataAsSpan<float>();
            return y.Length == 4 && y[3] == 8f
                ? new CudaProbe(true, null)
                : new CudaProbe(false, "the probe model returned a wrong answer on CUDA");
        }
        catch (Exception ex)
        {
            // OnnxRuntimeException where the CUDA libraries are missing, EntryPointNotFoundException on the CPU
            // package, DllNotFoundException, ...: all mean no CUDA here.
            return new CudaProbe(false, $"{ex.GetType().Name}: {ex.Message.Trim()}");
        }
    }
}

/// <summary>What the process got when its ONNX Runtime environment was created.</summary>
internal sealed record EnvironmentState(OrtEnv Env, bool GlobalThreadPool, bool SharedArena, int IntraOpThreads, bool AllowSpinning, bool Preexisting);

/// <summary>Whether CUDA ran the probe model, and why not when it did not.</summary>
internal sealed record CudaProbe(bool Available, string? Error);
