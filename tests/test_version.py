"""One version: npseq.__version__, the package metadata and CHANGELOG.md agree."""
import configparser
import importlib.metadata
import pathlib
import re

import pytest

import npseq

ROOT = pathlib.Path(__file__).resolve().parent.parent


def released_versions():
    """The versions of CHANGELOG.md's release headings, newest first (not Unreleased)."""
    text = (ROOT / "CHANGELOG.md").read_text()
    return re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, flags=re.M)


def test_version_is_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+", npseq.__version__)


def test_the_changelog_top_release_is_the_package_version():
    versions = released_versions()
    assert versions, "CHANGELOG.md has no '## [x.y.z] - YYYY-MM-DD' release heading"
    assert versions[0] == npseq.__version__
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()


def test_setup_cfg_reads_the_version_from_the_package():
    """The metadata's version is npseq.__version__ itself (one place to change)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["version"].strip() == "attr: npseq.__version__"


def metadata_version():
    """The installed package's version (pip install .), or, from a source tree, the one
    setuptools gives setup.cfg; None where neither is available."""
    try:
        return importlib.metadata.version("npseq")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        from setuptools.config.setupcfg import read_configuration
    except ImportError:  # a venv without setuptools: the attr: line is checked above
        return None
    return read_configuration(str(ROOT / "setup.cfg"))["metadata"]["version"]


def test_the_package_metadata_has_the_same_version():
    """A different installed version means the installed copy is stale: reinstall it."""
    assert metadata_version() in (npseq.__version__, None)
