"""Runs a program compiled by `mirage-compile` on an NVIDIA GPU. Imports no MLIR.

    from mirage_mlir.runtime import load
    program = load("build/gqa")          # the directory mirage-compile wrote
    out = program(q, k, v)               # PyTorch CUDA tensors, CuPy arrays, or any CUDA DLPack array
    program(q, k, v, out=o)              # or into preallocated outputs

Arguments are checked against the manifest (count, shape, dtype, device, C-contiguity and
16-byte alignment of the data pointer): a mismatch raises TypeError/ValueError naming the argument.
Outputs are allocated with the library of the inputs (torch.empty for tensors, cupy.empty for
arrays); temporaries (intermediate tensors between kernels, and the zeroed counters of fused split
reductions) are allocated once per device and library and reused, so one Program must not run on
two streams at once. With PyTorch tensors the kernels run on torch's current stream, so CUDA-graph
capture with torch.cuda.graph works; with CuPy arrays, on CuPy's current stream.
bf16 has no CuPy dtype: pass bf16 data as PyTorch tensors (or as uint16 CuPy arrays of bf16 bits).
The kernels are loaded with CuPy (`cupy.RawModule(path=...)`); CuPy is imported on first use. On a GPU
of the chip the program was compiled for, the cubins mirage-compile assembled with ptxas (manifest
"cubins") are loaded; elsewhere, or where none were written, the PTX (the driver compiles it).

A function compiled with several candidate plans (manifest "candidates", `mirage-compile
--candidates K`) runs the fastest on this GPU: on its first call on a device the runtime times each
candidate as at least 16 consecutive calls (CUDA events; the call's own buffers, then copies of its
inputs in turn, up to 16 sets or enough that the calls read twice the L2 cache; L2 flushed before each
sample; the median of repeated samples, at most `TUNE_BUDGET_S` seconds in all), drops any that fails
to launch or whose outputs on those inputs differ from the others' (`tuning.consensus`; with a
warning), and remembers the choice in a per-user cache (mirage_mlir/tuning.py) so that later loads
skip the timing. `load(dir, tune=False)` or MIRAGE_TUNE=0 runs the model's pick instead; so does a
first call made during CUDA-graph capture (nothing can be timed then). `Program.tune(*args)` times
the candidates explicitly and returns the table (as `mirage-tune` prints it).

A kernel the manifest marks "overlap" is launched as a programmatic dependent of the kernel before
it on GPUs that have it (sm_90; driver `cuLaunchKernelEx`): its blocks start while that one finishes,
copy what they may (weights) and wait for it before touching what it wrote. Later kernels of a plan
are marked, and a call's first kernel where the lowering lets it overlap whatever the stream ran
before the call: it waits first, or, in a program compiled with constant inputs (`mirage-compile
--constant-inputs`: weights), copies only those inputs before it waits; the caller must not have that
work write them (mirage_mlir.lowering.program.lower_graph says which kernels are marked). A kernel
that waits first is launched with the shared memory that spreads its blocks over the SMs (the
manifest's "shared_bytes"). MIRAGE_OVERLAP=inner launches every call's first kernel plainly,
MIRAGE_OVERLAP=0 every kernel.

A function compiled for a dynamic size (`tensor<?x4096xf16>`; mirage-compile --sizes) loads as a
Dispatcher: a call of size n runs the specialization of the smallest compiled size >= n on the
caller's arrays, its kernels told n (no padding, no copies); a size outside 1..largest, or dynamic
dims that disagree, raise ValueError naming the argument and the rule.
"""

from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np

from . import dispatch, tuning

__all__ = ["Dispatcher", "Program", "RuntimeError_", "load", "overlap_supported"]

_NUMPY = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "bf16": np.uint16, "i32": np.int32}
_TORCH = {"f16": "float16", "f32": "float32", "f64": "float64", "bf16": "bfloat16", "i32": "int32"}
_BYTES = {"f16": 2, "bf16": 2, "f32": 4, "f64": 8, "i32": 4}
MAX_STATIC_SHARED = 48 * 1024
TUNE_BUDGET_S = 1.5  # seconds of timing per function on first use (module loads included)
TUNE_SAMPLE_US = 20.0  # a sample launches a candidate back to back for about this long (once if longer)
TUNE_SAMPLES = 25
# a sample's consecutive calls (tuning.call_order), and its copies of the inputs at most (as many as
# benchmarks/gpu.py rotates). At 8 copies the two ranked qknorm_gqa bs1's c0 and c4 in opposite orders,
# reproducibly: 8 copies of a small program's inputs stayed in L2 where 16 did not (H200 run 115)
TUNE_CALLS = 16


class RuntimeError_(RuntimeError):
    """A compiled program that cannot be loaded or run (bad directory, no GPU, launch failure)."""


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _poison(x) -> None:
    """Fills an array with NaN (bf16 bits 0x7FC0 for uint16 CuPy arrays)."""
    if _is_torch(x):
        x.fill_(float("nan"))
    elif x.dtype == np.uint16:
        x.fill(0x7FC0)
    else:
        x.fill(np.nan)


def _host_float(x, dtype: str) -> np.ndarray:
    """A device array as float host values (bf16 from torch, or from its uint16 bits in CuPy)."""
    if _is_torch(x):
        return x.float().cpu().numpy()
    import cupy

    a = cupy.asnumpy(x)
    if dtype == "bf16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float64) if dtype == "f64" else a.astype(np.float32)


def _describe(x) -> str:
    shape = tuple(x.shape)
    return f"{type(x).__module__.split('.')[0]} {shape} {x.dtype}"


class _Kernel:
    def __init__(self, spec: dict, function, overlap: bool):
        self.spec = spec
        self.function = function
        self.grid = tuple(spec["grid"])
        self.block = tuple(spec["block"])
        self.shared = int(spec["shared_bytes"])
        self.overlap = overlap and bool(spec.get("overlap"))

    def launch(self, params: tuple) -> None:
        if self.overlap:
            _DependentLaunch.get().launch(self, params)
        else:
            self.function(self.grid, self.block, params, shared_mem=self.shared)


class _DependentLaunch:
    """cuLaunchKernelEx (CUDA driver API, through ctypes) with the attribute that makes a launch a
    programmatic dependent of the previous kernel in its stream (and, captured, a programmatic edge
    of a CUDA graph)."""

    PROGRAMMATIC_STREAM_SERIALIZATION = 6  # CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
    _instance: _DependentLaunch | None = None

    def __init__(self):
        import ctypes

        class Attribute(ctypes.Structure):  # CUlaunchAttribute: an id, padding, a 64-byte value union
            _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_int),
                        ("rest", ctypes.c_char * 60)]

        class Config(ctypes.Structure):  # CUlaunchConfig
            _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3), ("shared", ctypes.c_uint),
                        ("stream", ctypes.c_void_p), ("attrs", ctypes.POINTER(Attribute)),
                        ("num_attrs", ctypes.c_uint)]

        self.ctypes, self.Config = ctypes, Config
        self.attribute = Attribute(self.PROGRAMMATIC_STREAM_SERIALIZATION, b"", 1, b"")
        self.driver = ctypes.CDLL("libcuda.so.1")
        self.driver.cuLaunchKernelEx.argtypes = [ctypes.POINTER(Config), ctypes.c_void_p,
                                                 ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]

    @classmethod
    def get(cls) -> _DependentLaunch:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def launch(self, kernel: _Kernel, params: tuple) -> None:
        import cupy

        ctypes = self.ctypes
        values = (ctypes.c_uint64 * len(params))(*[int(p) for p in params])
        base = ctypes.addressof(values)
        pointers = (ctypes.c_void_p * len(params))(*[base + 8 * k for k in range(len(params))])
        config = self.Config((ctypes.c_uint * 3)(*kernel.grid), (ctypes.c_uint * 3)(*kernel.block), kernel.shared,
                             cupy.cuda.get_current_stream().ptr, ctypes.pointer(self.attribute), 1)
        function = getattr(kernel.function, "kernel", kernel.function).ptr
        status = self.driver.cuLaunchKernelEx(ctypes.byref(config), function, pointers, None)
        if status != 0:
            raise RuntimeError_(f"cuLaunchKernelEx of {kernel.spec['name']} failed (CUresult {status})")


def overlap_supported(device: int) -> bool:
    """Programmatic dependent launches: asked for (MIRAGE_OVERLAP), sm_90 or later, and a driver with
    cuLaunchKernelEx."""
    if not tuning.switched_on("MIRAGE_OVERLAP"):
        return False
    import cupy

    if int(cupy.cuda.Device(device).compute_capability) < 90:
        return False
    try:
        _DependentLaunch.get()
    except (OSError, AttributeError):
        return False
    return True


class Program:
    """One function of a compiled directory (the manifest's entry unless `function` names another)."""

    def __init__(self, directory: str, function: str | None = None, tune: bool | None = None,
                 candidate: int | None = None):
        path = os.path.join(directory, "manifest.json")
        try:
            with open(path, encoding="utf-8") as f:
                manifest = json.load(f)
        except OSError as e:
            raise RuntimeError_(f"cannot read {path}: {e.strerror}") from None
        if manifest.get("format") != "mirage-gpu" or manifest.get("version") != 1:
            raise RuntimeError_(f"{path} is not a mirage-gpu version 1 manifest")
        self.directory = directory
        self.manifest = manifest
        self.name = function or manifest["entry"]
        if self.name not in manifest["functions"]:
            raise RuntimeError_(f"no function '{self.name}' in {path} (has {', '.join(manifest['functions'])})")
        spec = manifest["functions"][self.name]
        self.inputs = spec["inputs"]
        self.outputs = spec["outputs"]
        # a specialization of a dynamic size: per input / output, the dim (the leading one) that may
        # hold fewer rows than its static size (-1: none); the kernels take the call's row count
        self.rows = spec.get("rows")
        self.row_count = None  # the current call's (set by _arguments)
        # inputs compiled as constant (weights): the work before a call must not write them
        self.constant_inputs = spec.get("constant_inputs", [])
        # the candidate plans, the search's pick first (model_choice: the model's, registers
        # counted); a manifest without candidates has one (a dispatching function has none: load()
        # gives a Dispatcher for it)
        self.candidates = spec.get("candidates") or [{"kernels": spec.get("kernels", []),
                                                      "temporaries": spec.get("temporaries", [])}]
        self.model_choice = int(spec.get("model_choice", 0))
        self.tune_enabled = tuning.enabled() if tune is None else tune
        self.choice: dict[int, int] = {}  # per device: the candidate that runs
        if candidate is not None and not 0 <= candidate < len(self.candidates):
            raise RuntimeError_(f"{self.name} has {len(self.candidates)} candidate plan(s), not a candidate {candidate}")
        self.fixed_candidate = candidate
        self.tuning: dict[int, dict] = {}  # per device: how the choice was made (table of mirage-tune)
        self._kernels: dict[tuple, list[_Kernel]] = {}  # per (device, candidate)
        self._workspace: dict[tuple, list] = {}

    @property
    def kernel_specs(self) -> list[dict]:
        """The kernels of the search's pick (the function's own)."""
        return self.manifest["functions"][self.name]["kernels"]

    def __repr__(self) -> str:
        sig = ", ".join(f"{tuple(t['shape'])}x{t['dtype']}" for t in self.inputs)
        res = ", ".join(f"{tuple(t['shape'])}x{t['dtype']}" for t in self.outputs)
        plans = f", {len(self.candidates)} candidate plans" if len(self.candidates) > 1 else ""
        return f"<mirage Program {self.name}({sig}) -> {res}; {len(self.kernel_specs)} kernel(s){plans}>"

    # -- loading -------------------------------------------------------------------------------
    def _load(self, device: int, candidate: int) -> list[_Kernel]:
        if (device, candidate) in self._kernels:
            return self._kernels[device, candidate]
        try:
            import cupy
        except ImportError:
            raise RuntimeError_("mirage_mlir.runtime needs CuPy (pip install cupy-cuda13x)") from None
        modules: dict[str, object] = {}
        kernels = []
        overlap = overlap_supported(device)
        with cupy.cuda.Device(device):
            for spec in self.candidates[candidate]["kernels"]:
                ptx = spec["ptx"]
                if ptx not in modules:
                    modules[ptx] = cupy.RawModule(path=os.path.join(self.directory, self._module_file(ptx, device)))
                function = modules[ptx].get_function(spec["name"])
                if int(spec["shared_bytes"]) > MAX_STATIC_SHARED:
                    function.max_dynamic_shared_size_bytes = int(spec["shared_bytes"])
                # MIRAGE_OVERLAP=inner: a call's first kernel waits for the work before it
                first_waits = not kernels and os.environ.get("MIRAGE_OVERLAP", "").strip().lower() == "inner"
                kernels.append(_Kernel(spec, function, overlap and not first_waits))
        self._kernels[device, candidate] = kernels
        return kernels

    def _module_file(self, ptx: str, device: int) -> str:
        """The cubin mirage-compile assembled for the manifest's chip where this GPU is that chip (no
        JIT compilation at load: it took most of a first call's tuning, H200 run 99), else the PTX."""
        import cupy

        cubin = self.manifest.get("cubins", {}).get(ptx)
        chip = "".join(c for c in self.manifest.get("chip", "") if c.isdigit())
        if cubin and chip == str(cupy.cuda.Device(device).compute_capability) \
                and os.path.exists(os.path.join(self.directory, cubin)):
            return cubin
        return ptx

    # -- arguments -------------------------------------------------------------------------------
    def _adopt(self, index: int, x):
        """Other arrays that speak DLPack (JAX, ...) become CuPy arrays, without a copy."""
        if _is_torch(x) or type(x).__module__.startswith("cupy"):
            return x
        if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
            device_type = int(x.__dlpack_device__()[0])
            if device_type not in (2, 13):  # kDLCUDA, kDLCUDAManaged
                raise ValueError(f"{self.name}: argument {index} is not on a CUDA device (DLPack device type "
                                 f"{device_type})")
            import cupy

            return cupy.from_dlpack(x)
        return x

    def _sized(self, specs: list[dict], key: str) -> list[dict]:
        """The specs of the inputs or outputs at this call's row count (see self.rows)."""
        if not self.rows:
            return specs
        return [dict(t, shape=[self.row_count] + t["shape"][1:]) if d == 0 else t
                for t, d in zip(specs, self.rows[key])]

    def _count_rows(self, args) -> None:
        """The call's row count: the leading dim of the masked inputs, one size, 1 to the static one."""
        if not self.rows:
            return
        counts = [(k, x.shape[0]) for k, (x, d) in enumerate(zip(args, self.rows["inputs"]))
                  if d == 0 and getattr(x, "shape", None)]
        if not counts:
            raise ValueError(f"{self.name}: no argument gives the row count")
        k0, n = counts[0]
        limit = self.inputs[k0]["shape"][0]
        for k, count in counts:
            if count != n:
                raise ValueError(f"{self.name}: argument {k} has {count} rows but argument {k0} has {n}: "
                                 f"the rows of every argument with a dynamic leading dim are one count")
        if not 1 <= n <= limit:
            raise ValueError(f"{self.name}: argument {k0} has {n} rows; this specialization takes 1 to {limit}")
        self.row_count = n

    def _check_type(self, index: int, x, spec: dict, what: str) -> None:
        """Shape and dtype only (reported before any placement problem)."""
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            shape, dtype = tuple(spec["shape"]), spec["dtype"]
            if _is_torch(x):
                import torch

                ok = isinstance(x, torch.Tensor) and x.dtype == getattr(torch, _TORCH[dtype])
            else:
                ok = np.dtype(x.dtype) == np.dtype(_NUMPY[dtype])
            if tuple(x.shape) != shape or not ok:
                extra = " (torch.bfloat16, or uint16 bits in CuPy)" if dtype == "bf16" else ""
                raise ValueError(f"{self.name}: {what} {index} must be {shape} {dtype}{extra}, got {_describe(x)}")

    def _check(self, index: int, x, spec: dict, what: str) -> tuple[int, int]:
        """Checks one array against its spec; returns (device, data pointer)."""
        shape, dtype = tuple(spec["shape"]), spec["dtype"]
        label = f"{what} {index}"
        if _is_torch(x):
            import torch

            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{label}: expected a CUDA tensor or CuPy array, got {type(x).__name__}")
            ok_dtype = x.dtype == getattr(torch, _TORCH[dtype])
            on_gpu = x.is_cuda
            device = x.device.index if on_gpu else None
            ptr, contiguous = x.data_ptr(), x.is_contiguous()
        else:
            try:
                import cupy
            except ImportError:
                raise TypeError(f"{label}: expected a PyTorch CUDA tensor or a CuPy array, got {type(x).__name__}") from None
            if not isinstance(x, cupy.ndarray):
                raise TypeError(f"{label}: expected a PyTorch CUDA tensor or a CuPy array, got {type(x).__name__}")
            ok_dtype = x.dtype == np.dtype(_NUMPY[dtype])
            on_gpu = True
            device, ptr, contiguous = x.device.id, x.data.ptr, x.flags.c_contiguous
        expected = f"{shape} {dtype}" + (" (torch.bfloat16, or uint16 bits in CuPy)" if dtype == "bf16" else "")
        if tuple(x.shape) != shape or not ok_dtype:
            raise ValueError(f"{self.name}: {label} must be {expected}, got {_describe(x)}")
        if not on_gpu:
            raise ValueError(f"{self.name}: {label} is on {x.device}, not on a CUDA device")
        if not contiguous:
            raise ValueError(f"{self.name}: {label} must be C-contiguous")
        if ptr % 16:
            raise ValueError(f"{self.name}: {label}'s data pointer is not 16-byte aligned (the kernels use 128-bit accesses)")
        return device, ptr

    def _alloc(self, spec: dict, like_torch: bool, device: int):
        shape, dtype = tuple(spec["shape"]), spec["dtype"]
        zero = spec.get("zero", False)  # counters: zeroed once, the kernels keep them zero
        if like_torch:
            import torch

            make = torch.zeros if zero else torch.empty
            return make(shape, dtype=getattr(torch, _TORCH[dtype]), device=f"cuda:{device}")
        import cupy

        with cupy.cuda.Device(device):
            return (cupy.zeros if zero else cupy.empty)(shape, dtype=_NUMPY[dtype])

    @staticmethod
    def _ptr(x) -> int:
        return x.data_ptr() if _is_torch(x) else x.data.ptr

    # -- running ---------------------------------------------------------------------------------
    def __call__(self, *args, out=None, poison: bool = False, stream=None):
        """Runs the program; returns the output (one) or a tuple of outputs.

        `out`: preallocated outputs (an array or a sequence). `poison`: fill outputs and
        temporaries with NaN first (checks that every element is written). `stream`: a CuPy stream
        (default: torch's current stream for tensors, CuPy's current stream for arrays).
        """
        like_torch, args, device, pointers = self._arguments(args)
        outputs = self._sized(self.outputs, "outputs")
        if out is None:
            outs = [self._alloc(spec, like_torch, device) for spec in outputs]
        else:
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            if len(outs) != len(self.outputs):
                raise TypeError(f"{self.name}: out must hold {len(self.outputs)} array(s), got {len(outs)}")
            for k, (x, spec) in enumerate(zip(outs, outputs)):
                d, _ = self._check(k, x, spec, "output")
                if d != device:
                    raise ValueError(f"{self.name}: output {k} is on device {d}, the arguments on {device}")
        import cupy

        if stream is None and like_torch:
            import torch

            with warnings.catch_warnings():  # CuPy 14 deprecates ExternalStream (still the tested path)
                warnings.simplefilter("ignore", DeprecationWarning)
                stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream, device)
        with cupy.cuda.Device(device):
            if stream is not None:
                with stream:
                    self._run(device, like_torch, pointers, outs, poison)
            else:
                self._run(device, like_torch, pointers, outs, poison)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _arguments(self, args) -> tuple:
        """(like_torch, args as arrays, device, data pointers) after checking them against the manifest."""
        if len(args) != len(self.inputs):
            raise TypeError(f"{self.name}() takes {len(self.inputs)} arguments, got {len(args)}")
        like_torch = any(_is_torch(a) for a in args)
        self._count_rows(args)
        inputs = self._sized(self.inputs, "inputs")
        for k, (x, spec) in enumerate(zip(args, inputs)):
            self._check_type(k, x, spec, "argument")
        args = [self._adopt(k, x) for k, x in enumerate(args)]
        devices, pointers = set(), []
        for k, (x, spec) in enumerate(zip(args, inputs)):
            device, ptr = self._check(k, x, spec, "argument")
            devices.add(device)
            pointers.append(ptr)
        if len(devices) != 1:
            raise ValueError(f"{self.name}: the arguments are on different devices {sorted(devices)}")
        return like_torch, args, devices.pop(), pointers

    def _temporaries(self, device: int, like_torch: bool, candidate: int) -> list:
        key = (device, like_torch, candidate)
        if key not in self._workspace:
            self._workspace[key] = [self._alloc(spec, like_torch, device)
                                    for spec in self.candidates[candidate]["temporaries"]]
        return self._workspace[key]

    def _buffers(self, device: int, like_torch: bool, candidate: int, pointers: list, outs: list) -> dict:
        temps = self._temporaries(device, like_torch, candidate)
        return {"input": pointers, "output": [self._ptr(o) for o in outs], "temp": [self._ptr(t) for t in temps],
                "rows": [self.row_count]}

    def _run(self, device: int, like_torch: bool, pointers: list, outs: list, poison: bool) -> None:
        """Runs the chosen candidate on the current device and stream (choosing it first if needed)."""
        if device not in self.choice:
            self._choose(device, like_torch, pointers, outs)
        candidate = self.choice[device]
        if poison:  # after the choice: timing the candidates wrote the outputs
            for x in outs:
                _poison(x)
            for t, spec in zip(self._temporaries(device, like_torch, candidate), self.candidates[candidate]["temporaries"]):
                if not spec.get("zero"):  # counters the kernels keep at zero
                    _poison(t)
        self._launch(self._load(device, candidate), self._buffers(device, like_torch, candidate, pointers, outs))

    # -- choosing among candidate plans -----------------------------------------------------------
    def _choose(self, device: int, like_torch: bool, pointers: list, outs: list) -> None:
        """The model's pick, a cached choice, or the fastest candidate timed now (see the module doc)."""
        if self.fixed_candidate is not None:
            self.choice[device] = self.fixed_candidate
            return
        if len(self.candidates) == 1 or not self.tune_enabled:
            self.choice[device] = self.model_choice if len(self.candidates) > 1 else 0
            return
        import cupy

        if cupy.cuda.get_current_stream().is_capturing():
            warnings.warn(f"{self.name}: first call during CUDA-graph capture: running the model's pick "
                          "untimed (call the program once before capturing to tune it)", stacklevel=4)
            self.choice[device] = self.model_choice
            return
        key = self._tuning_key(device)
        entry = tuning.load(key, len(self.candidates))
        if entry is not None:
            self.choice[device] = entry["choice"]
            self.tuning[device] = {"source": "cache", "times_us": entry["times_us"], "choice": entry["choice"]}
            return
        self._measure(device, like_torch, pointers, outs)
        tuning.store(key, self.choice[device], self.tuning[device]["times_us"])

    def _tuning_key(self, device: int) -> dict:
        import cupy

        if not hasattr(self, "_artifact"):
            self._artifact = tuning.artifact_digest(self.directory, self.manifest)
        name = cupy.cuda.runtime.getDeviceProperties(device)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        return tuning.cache_key(self._artifact, self.name, name, cupy.cuda.runtime.driverGetVersion())

    def _measure(self, device: int, like_torch: bool, pointers: list, outs: list,
                 budget_s: float = TUNE_BUDGET_S) -> None:
        """Times every candidate on these buffers (current stream): one launch each to load it, catch
        launch errors and collect its outputs (one that disagrees with the others is dropped:
        `tuning.consensus`), then rounds of samples (L2 flushed by a read, then the candidate's
        consecutive calls for about TUNE_SAMPLE_US) until
        TUNE_SAMPLES rounds or the budget; the median per call decides. A sample replays the
        candidate's calls captured as one CUDA graph: launched one by one from Python, the CPU's
        launch latency entered the times (8-10 us per candidate of LayerNorm + Linear, unevenly:
        the tuner kept one 14% slower than the fastest, H200 run 43). The calls, at least
        TUNE_CALLS of them, run over rotated copies of the inputs (`_input_sets`,
        `tuning.call_order`), as a model's layers follow each other: a first kernel that overlaps
        the call before it (constant inputs) gains differently per candidate, and timed one call at
        a time the tuner kept one 19% slower than the fastest (H200 run 97)."""
        import cupy

        start = time.perf_counter()
        stream = cupy.cuda.get_current_stream()
        launches: list = [None] * len(self.candidates)
        outputs = {}  # every candidate's, on the same inputs: they must agree (tuning.consensus)
        dtypes = [spec["dtype"] for spec in self.outputs]
        for c in [self.model_choice] + [c for c in range(len(self.candidates)) if c != self.model_choice]:
            try:
                kernels = self._load(device, c)
                for x in outs:  # a candidate that does not write its outputs must not show the last one's
                    _poison(x)
                self._launch(kernels, self._buffers(device, like_torch, c, pointers, outs))
                stream.synchronize()
            except Exception as e:  # noqa: BLE001 - a launch failure drops the candidate, whatever CuPy raises
                warnings.warn(f"{self.name}: candidate plan {c} failed to run and is dropped: {e}", stacklevel=5)
                continue
            outputs[c] = [_host_float(x, dtype) for x, dtype in zip(outs, dtypes)]
            launches[c] = kernels
        for c, why in tuning.consensus(outputs, dtypes).items():
            warnings.warn(f"{self.name}: candidate plan {c} is dropped: {why}", stacklevel=5)
            launches[c] = None
        l2 = int(cupy.cuda.runtime.getDeviceProperties(device).get("l2CacheSize", 64 << 20))
        sets, copies = self._input_sets(device, like_torch, pointers, l2)
        order = tuning.call_order(len(sets), TUNE_CALLS)
        calls = [None if kernels is None else
                 [(kernels, self._buffers(device, like_torch, c, sets[k], outs)) for k in order]
                 for c, kernels in enumerate(launches)]
        replays = [None if call is None else self._captured(call) for call in calls]
        # read, not written, to flush L2: dirty lines would be written back during the next sample
        flush = cupy.zeros(2 * l2 // 4, dtype=np.float32)
        samples: list[list[float]] = [[] for _ in launches]
        reps = [1] * len(launches)
        for round_ in range(TUNE_SAMPLES + 1):
            # a round's samples are queued before any is read: while the GPU runs one sample's flush
            # (~30 us) the CPU queues the next launches, so a candidate of several kernels is timed
            # without the gaps of the CPU's launch latency (as a CUDA graph replays it)
            events = []
            for c, call in enumerate(calls):
                if call is None:
                    continue
                begin, end = cupy.cuda.Event(), cupy.cuda.Event()
                flush.sum()
                begin.record(stream)
                for _ in range(reps[c]):
                    if replays[c] is not None:
                        replays[c].launch(stream)
                    else:
                        for kernels, buffers in call:
                            self._launch(kernels, buffers)
                end.record(stream)
                events.append((c, begin, end))
            stream.synchronize()
            for c, begin, end in events:
                us = cupy.cuda.get_elapsed_time(begin, end) * 1e3 / (reps[c] * len(order))
                if round_ == 0:  # the first round only sizes the samples
                    reps[c] = max(1, min(100, int(TUNE_SAMPLE_US / max(us * len(order), 1e-3))))
                else:
                    samples[c].append(us)
            if time.perf_counter() - start > budget_s and all(samples[c] for c, x in enumerate(calls) if x):
                break
        del copies
        choice, times = tuning.fastest(samples)
        self.choice[device] = choice
        self.tuning[device] = {"source": "measured", "times_us": times, "choice": choice,
                               "seconds": time.perf_counter() - start}

    def _input_sets(self, device: int, like_torch: bool, pointers: list, l2: int) -> tuple[list, list]:
        """The input pointers of a tuning sample's consecutive calls: the caller's, then copies of its
        inputs (made on the current stream), as many sets as read twice the L2 cache in all, at most
        TUNE_CALLS (so a weight-sized call reads its inputs from DRAM, as in a model); and the copies
        (to keep alive)."""
        import cupy

        specs = self._sized(self.inputs, "inputs")
        sizes = [int(np.prod(spec["shape"])) * _BYTES[spec["dtype"]] for spec in specs]
        count = tuning.consecutive_calls(sum(sizes), l2, TUNE_CALLS)
        sets, copies = [pointers], []
        stream = cupy.cuda.get_current_stream()
        for _ in range(count - 1):
            arrays = [self._alloc(spec, like_torch, device) for spec in specs]
            for array, source, size in zip(arrays, pointers, sizes):
                cupy.cuda.runtime.memcpyAsync(self._ptr(array), source, size,
                                              cupy.cuda.runtime.memcpyDeviceToDevice, stream.ptr)
            sets.append([self._ptr(a) for a in arrays])
            copies.append(arrays)
        return sets, copies

    def _captured(self, calls: list):
        """The calls' launches ((kernels, buffers) each) as one CUDA graph (cupy.cuda.Graph), or None
        where capture fails (then the samples launch them one by one)."""
        import cupy

        capture = cupy.cuda.Stream(non_blocking=True)
        try:
            with capture:
                capture.begin_capture()
                try:
                    for kernels, buffers in calls:
                        self._launch(kernels, buffers)
                finally:
                    graph = capture.end_capture()
            return graph
        except Exception as e:  # noqa: BLE001 - whatever CuPy raises, untimed launches still work
            warnings.warn(f"{self.name}: cannot capture a candidate as a CUDA graph ({e}); timing its launches",
                          stacklevel=6)
            return None

    def tune(self, *args, budget_s: float = TUNE_BUDGET_S) -> list[dict]:
        """Times every candidate on these arguments now (ignoring a cached choice), stores the choice,
        and returns one row per candidate: estimate_us (the model's), measured_us, chosen, model_choice."""
        like_torch, args, device, pointers = self._arguments(args)
        outs = [self._alloc(spec, like_torch, device) for spec in self._sized(self.outputs, "outputs")]
        import cupy

        with cupy.cuda.Device(device):
            self._measure(device, like_torch, pointers, outs, budget_s)
        tuning.store(self._tuning_key(device), self.choice[device], self.tuning[device]["times_us"])
        return [{"function": self.name, "candidate": c, "kernels": len(spec["kernels"]),
                 "estimate_us": spec.get("estimate_us"), "measured_us": self.tuning[device]["times_us"][c],
                 "chosen": c == self.choice[device], "model_choice": c == self.model_choice}
                for c, spec in enumerate(self.candidates)]

    @staticmethod
    def _launch(kernels: list[_Kernel], buffers: dict) -> None:
        for k in kernels:
            # pointers and the row count (an index, 64 bits) alike
            k.launch(tuple(np.uint64(buffers[kind][index]) for kind, index in k.spec["args"]))

    def describe(self) -> str:
        lines = [repr(self)]
        for c, candidate in enumerate(self.candidates):
            if len(self.candidates) > 1:
                lines.append(f" candidate {c} (model estimate {candidate.get('estimate_us', 0):.1f} us)"
                             + (" [model's pick]" if c == self.model_choice else ""))
            for spec in candidate["kernels"]:
                lines.append(f"  {spec['name']}: grid {tuple(spec['grid'])} block {tuple(spec['block'])} "
                             f"smem {spec['shared_bytes']} B args {[f'{a}{i}' for a, i in spec['args']]}")
        return "\n".join(lines)


class Dispatcher:
    """A function compiled for a dynamic size (manifest "dispatch", mirage-specialize-dims): each
    call runs the specialization mirage_mlir/dispatch.py chooses for the size n of its arguments'
    dynamic (leading) dims, the smallest compiled size >= n, directly on the caller's arrays: its
    kernels take n and neither read nor write rows past it. Each specialization is a Program, loaded
    and tuned on its first use (its tuning is cached per function)."""

    def __init__(self, directory: str, name: str, spec: dict, tune: bool | None, candidate: int | None):
        self.directory, self.name, self.tune, self.candidate = directory, name, tune, candidate
        self.inputs, self.outputs = spec["inputs"], spec["outputs"]
        self.sizes = spec["dispatch"]["sizes"]
        self.functions = spec["dispatch"]["functions"]
        self.programs: dict[int, Program] = {}

    def __repr__(self) -> str:
        return (f"<mirage program {self.name}: sizes 1..{self.sizes[-1]} through "
                f"{', '.join(self.functions)} in {self.directory}>")

    def specialization(self, n: int) -> Program:
        """The Program that runs dynamic size n (ValueError outside the compiled range)."""
        try:
            index = dispatch.choose(self.sizes, n)
        except dispatch.DispatchError as e:
            raise ValueError(f"{self.name}: {e}") from None
        if index not in self.programs:
            self.programs[index] = Program(self.directory, self.functions[index], self.tune, self.candidate)
        return self.programs[index]

    def __call__(self, *args, out=None, poison: bool = False, stream=None):
        if len(args) != len(self.inputs):
            raise TypeError(f"{self.name}() takes {len(self.inputs)} arguments, got {len(args)}")
        patterns = [tuple(t["shape"]) for t in self.inputs]
        try:
            n = dispatch.common_size([tuple(getattr(a, "shape", ())) for a in args], patterns)
        except dispatch.DispatchError as e:
            raise ValueError(f"{self.name}: {e}") from None
        return self.specialization(n)(*args, out=out, poison=poison, stream=stream)


def load(directory: str, function: str | None = None, tune: bool | None = None,
         candidate: int | None = None) -> Program | Dispatcher:
    """The program that `mirage-compile ... -o directory` wrote. `tune`: choose among its candidate
    plans by timing them on first use (default: on unless MIRAGE_TUNE=0); `candidate`: run that
    candidate plan (an index into the manifest's "candidates"), untimed. A function compiled for a
    dynamic size gives a Dispatcher over its specializations."""
    program = Program(directory, function, tune, candidate)
    spec = program.manifest["functions"][program.name]
    return Dispatcher(directory, program.name, spec, tune, candidate) if "dispatch" in spec else program
