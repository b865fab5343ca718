"""Stand-in for pypa's get-pip.py, which ansible-test downloads from a host this network cannot reach.

ansible-test runs the bootstrap script with pip-install arguments (``pip==X setuptools wheel
--no-setuptools ...``) inside a fresh virtualenv that has no pip. Python's bundled ensurepip gives
that virtualenv a pip, which then installs the exact versions ansible-test asked for from PyPI.
"""
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main(argv):
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
    pip_args = [arg for arg in argv if arg not in GET_PIP_ONLY_OPTIONS]
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + pip_args)


if __name__ == "__main__":
    main(sys.argv[1:])
