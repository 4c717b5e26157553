"""Package discovery (the rest of the metadata is in setup.cfg).

`corl_gym` is the package; the top-level folders `envs/`, `agents/` and `benchmarks/` install as its
subpackages `corl_gym.envs`, `corl_gym.agents` and `corl_gym.benchmarks`. Every package below them is
found, not listed, so a new folder with an `__init__.py` is in the wheel without editing this file
(`tests/test_packaging.py` compares the wheel with the source tree).
"""

from setuptools import find_packages, setup

MAPPED = {"corl_gym.envs": "envs", "corl_gym.agents": "agents", "corl_gym.benchmarks": "benchmarks"}

packages = find_packages(include=["corl_gym", "corl_gym.*"])
for package, folder in MAPPED.items():
    packages += [package, *(f"{package}.{sub}" for sub in find_packages(folder))]

setup(
    packages=packages,
    package_dir=MAPPED,
    package_data={"corl_gym.experts": ["pools/*.yaml"], "corl_gym.benchmarks": ["data/*.jsonl"]},
)
