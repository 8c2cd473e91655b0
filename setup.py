"""Packaging detail pyproject.toml cannot say: the committed `models/` folder ships inside
the wheel as `veil/models/` (package data), so an installed Veil finds its models without a
checkout. Everything else about the package is in pyproject.toml."""

from setuptools import find_packages, setup

MODEL_FILES = ["manifest.json", "*.onnx", "*.weights"]

setup(
    packages=[*find_packages("companion"), "veil.models"],
    package_dir={"": "companion", "veil.models": "models"},
    package_data={"veil": ["py.typed", "data/*.json"], "veil.models": MODEL_FILES},
    exclude_package_data={"veil.models": ["cache/*"]},
)
