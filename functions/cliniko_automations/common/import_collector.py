"""A handler's import inside a Lambda, without the cyclic garbage collector's passes.

CPython's collector runs after every 2,000 new container objects and, every tenth and
hundredth run, walks every object alive. A handler's import leaves some 80,000 tracked objects
that live as long as the process (modules, classes, functions, botocore's models), so its
collections walk them again and again and free next to nothing, and the first call's walk them
once more: in the erasure API's import and first call, 52 collections and 57 million
instructions (counted with callgrind; 4 % of a minimal handler's whole cold start), 15 and 9
million with the pause below (yet the import and first call together only 25 million fewer:
where the other 23 go was not traced). So, inside a Lambda only:

- the package pauses the collector as soon as a handler's import reaches it
  (`pause_for_import`, from `cliniko_automations/__init__.py`, before anything else of ours
  or of the libraries' we import);
- each handler module, as its import ends, calls `import_finished`: what the import made is
  frozen (`gc.freeze`: moved where no collection walks it; reference counting still frees
  whatever is dropped later) and the collector runs again, over what the invocations make.

Reference counting frees nearly everything an import drops; only cycles made during the import
and dropped stay (frozen, never collected). Imported anywhere else (tests, the command line,
scripts), nothing changes. A collector someone else had disabled stays disabled.
"""

from __future__ import annotations

import gc
import os

# Whether `pause_for_import` disabled the collector (and `import_finished` has not run yet).
_paused = False


def pause_for_import() -> None:
    global _paused
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and gc.isenabled():
        gc.disable()
        _paused = True


def import_finished() -> None:
    """Called last in every handler module: freeze what the import made, collect again."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
