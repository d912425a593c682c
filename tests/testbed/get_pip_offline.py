"""Stand-in for the pip bootstrap script ansible-test downloads from a host this test
bed cannot reach (only PyPI is). Installed by setup.sh into ansible-test's cache as
get_pip_<version>.py, it does what that script does: pip into the fresh venv (from
Python's own ensurepip), then the pinned pip and packages it is asked for, from PyPI.
"""

from __future__ import annotations

import ensurepip
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

ensurepip.bootstrap(upgrade=True)
subprocess.run(
    [sys.executable, "-m", "pip", "install", "--quiet", *[a for a in sys.argv[1:] if a not in GET_PIP_ONLY]],
    check=True,
)
