"""Stand-in for the pip bootstrap script ansible-test downloads for each sanity venv
from a host this test bed cannot reach (only PyPI is). `make sanity` installs it into
ansible-test's cache under the name ansible-test looks for. It does what that script
does: pip into the fresh venv (Python's own ensurepip, in a child process: in-process
it would drop pip's configuration for what follows), then the pip version and packages
ansible-test asks for, from the package index pip is configured with.
"""

from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, capture_output=True)
subprocess.run(
    [sys.executable, "-m", "pip", "install", "--quiet", *[a for a in sys.argv[1:] if a not in GET_PIP_ONLY]],
    check=True,
)
