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
The kernels are loaded with CuPy (`cupy.RawModule(path=...)`); CuPy is imported on first use.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

__all__ = ["Program", "RuntimeError_", "load"]

_NUMPY = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "bf16": np.uint16, "i32": np.int32}
_TORCH = {"f16": "float16", "f32": "float32", "f64": "float64", "bf16": "bfloat16", "i32": "int32"}
_BYTES = {"f16": 2, "bf16": 2, "f32": 4, "f64": 8, "i32": 4}
MAX_STATIC_SHARED = 48 * 1024


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


def _describe(x) -> str:
    shape = tuple(x.shape)
    return f"{type(x).__module__.split('.')[0]} {shape} {x.dtype}"


class _Kernel:
    def __init__(self, spec: dict, function):
        self.spec = spec
        self.function = function
        self.grid = tuple(spec["grid"])
        self.block = tuple(spec["block"])
        self.shared = int(spec["shared_bytes"])


class Program:
    """One function of a compiled directory (the manifest's entry unless `function` names another)."""

    def __init__(self, directory: str, function: str | None = None):
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
        self.temporaries = spec["temporaries"]
        self.kernel_specs = spec["kernels"]
        self._kernels: dict[int, list[_Kernel]] = {}  # per device
        self._workspace: dict[tuple, list] = {}

    def __repr__(self) -> str:
        sig = ", ".join(f"{tuple(t['shape'])}x{t['dtype']}" for t in self.inputs)
        res = ", ".join(f"{tuple(t['shape'])}x{t['dtype']}" for t in self.outputs)
        return f"<mirage Program {self.name}({sig}) -> {res}; {len(self.kernel_specs)} kernel(s)>"

    # -- loading -------------------------------------------------------------------------------
    def _load(self, device: int) -> list[_Kernel]:
        if device in self._kernels:
            return self._kernels[device]
        try:
            import cupy
        except ImportError:
            raise RuntimeError_("mirage_mlir.runtime needs CuPy (pip install cupy-cuda13x)") from None
        modules: dict[str, object] = {}
        kernels = []
        with cupy.cuda.Device(device):
            for spec in self.kernel_specs:
                ptx = spec["ptx"]
                if ptx not in modules:
                    modules[ptx] = cupy.RawModule(path=os.path.join(self.directory, ptx))
                function = modules[ptx].get_function(spec["name"])
                if int(spec["shared_bytes"]) > MAX_STATIC_SHARED:
                    function.max_dynamic_shared_size_bytes = int(spec["shared_bytes"])
                kernels.append(_Kernel(spec, function))
        self._kernels[device] = kernels
        return kernels

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

    def _alloc(self, spec: dict, like_torch: bool, device: int, poison: bool):
        shape, dtype = tuple(spec["shape"]), spec["dtype"]
        zero = spec.get("zero", False)  # counters: zeroed once, the kernels keep them zero
        if like_torch:
            import torch

            make = torch.zeros if zero else torch.empty
            t = make(shape, dtype=getattr(torch, _TORCH[dtype]), device=f"cuda:{device}")
            if poison:
                _poison(t)
            return t
        import cupy

        with cupy.cuda.Device(device):
            a = (cupy.zeros if zero else cupy.empty)(shape, dtype=_NUMPY[dtype])
            if poison:
                _poison(a)
            return a

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
        if len(args) != len(self.inputs):
            raise TypeError(f"{self.name}() takes {len(self.inputs)} arguments, got {len(args)}")
        like_torch = any(_is_torch(a) for a in args)
        for k, (x, spec) in enumerate(zip(args, self.inputs)):
            self._check_type(k, x, spec, "argument")
        args = [self._adopt(k, x) for k, x in enumerate(args)]
        devices, pointers = set(), []
        for k, (x, spec) in enumerate(zip(args, self.inputs)):
            device, ptr = self._check(k, x, spec, "argument")
            devices.add(device)
            pointers.append(ptr)
        if len(devices) != 1:
            raise ValueError(f"{self.name}: the arguments are on different devices {sorted(devices)}")
        device = devices.pop()
        if out is None:
            outs = [self._alloc(spec, like_torch, device, poison) for spec in self.outputs]
        else:
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            if len(outs) != len(self.outputs):
                raise TypeError(f"{self.name}: out must hold {len(self.outputs)} array(s), got {len(outs)}")
            for k, (x, spec) in enumerate(zip(outs, self.outputs)):
                d, _ = self._check(k, x, spec, "output")
                if d != device:
                    raise ValueError(f"{self.name}: output {k} is on device {d}, the arguments on {device}")
                if poison:
                    _poison(x)
        key = (device, like_torch)
        if key not in self._workspace:
            self._workspace[key] = [self._alloc(spec, like_torch, device, False) for spec in self.temporaries]
        temps = self._workspace[key]
        if poison:
            for t, spec in zip(temps, self.temporaries):
                if not spec.get("zero"):  # counters the kernels keep at zero
                    _poison(t)
        buffers = {"input": pointers, "output": [self._ptr(o) for o in outs], "temp": [self._ptr(t) for t in temps]}
        import cupy

        kernels = self._load(device)
        if stream is None and like_torch:
            import torch

            with warnings.catch_warnings():  # CuPy 14 deprecates ExternalStream (still the tested path)
                warnings.simplefilter("ignore", DeprecationWarning)
                stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream, device)
        with cupy.cuda.Device(device):
            if stream is not None:
                with stream:
                    self._launch(kernels, buffers)
            else:
                self._launch(kernels, buffers)
        return outs[0] if len(outs) == 1 else tuple(outs)

    @staticmethod
    def _launch(kernels: list[_Kernel], buffers: dict) -> None:
        for k in kernels:
            params = tuple(np.uint64(buffers[kind][index]) for kind, index in k.spec["args"])
            k.function(k.grid, k.block, params, shared_mem=k.shared)

    def describe(self) -> str:
        lines = [repr(self)]
        for spec in self.kernel_specs:
            lines.append(f"  {spec['name']}: grid {tuple(spec['grid'])} block {tuple(spec['block'])} "
                         f"smem {spec['shared_bytes']} B args {[f'{a}{i}' for a, i in spec['args']]}")
        return "\n".join(lines)


def load(directory: str, function: str | None = None) -> Program:
    """The program that `mirage-compile ... -o directory` wrote."""
    return Program(directory, function)
