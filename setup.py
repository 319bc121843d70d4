"""kdkeras: cross-layer knowledge distillation for Keras (Chou, Chiu & Liao, 2021)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements(name: str) -> list[str]:
    lines = (HERE / name).read_text().splitlines()
    return [l.strip() for l in lines if l.strip() and not l.startswith(("#", "-r"))]


setup(
    name="kdkeras",
    version="0.1.0",
    description=(
        "Knowledge distillation for Keras 3: cross-layer Gram matrices, KL, "
        "offline teacher ensembles and the sigmoid-beta gradient split"
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["kdkeras", "kdkeras.*"]),
    python_requires=">=3.10",
    install_requires=_requirements("requirements.txt"),
    extras_require={
        "dev": _requirements("requirements-dev.txt"),
        # A GPU machine: the full TensorFlow wheel with CUDA instead of tensorflow-cpu.
        "gpu": ["tensorflow[and-cuda]==2.21.0"],
        "jax": ["jax"],
    },
)
