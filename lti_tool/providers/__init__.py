"""Video providers: the packages named in PROVIDER_PACKAGES, each behind `base.VideoProvider`.

`load_packages` imports the packages (BigBlueButton and LiveKit are built in; a test adds a
third the same way); `attach` builds each package's provider from the app's config and
registers its routes and worker tasks. At run time the core asks `provider_for(name)` and
`is_ready(name)`, and never names a provider itself.
"""
from __future__ import annotations

import importlib

from flask import Flask, current_app

from ..logsafe import quoted
from .base import ProviderMisconfigured, ProviderPackage, VideoProvider


def load_packages(module_names: str) -> tuple[list[ProviderPackage], list[str]]:
    """The provider packages of these modules (space-separated import paths), and the problems
    that kept any of them out (for validate_config to report)."""
    packages: list[ProviderPackage] = []
    problems: list[str] = []
    for module_name in module_names.split():
        try:
            package = getattr(importlib.import_module(module_name), "PACKAGE", None)
        except ImportError as exc:
            problems.append(f"PROVIDER_PACKAGES: cannot import {module_name}: {exc}")
            continue
        if not isinstance(package, ProviderPackage):
            problems.append(f"PROVIDER_PACKAGES: {module_name} has no PACKAGE (a providers.base.ProviderPackage)")
        elif any(known.name == package.name for known in packages):
            problems.append(f"PROVIDER_PACKAGES: two packages are named {package.name!r}")
        else:
            packages.append(package)
    return packages, problems


def attach(app: Flask) -> None:
    """Build the providers of the app's packages and register their routes and worker tasks."""
    packages, _ = load_packages(app.config["PROVIDER_PACKAGES"])
    app.extensions["provider_packages"] = {package.name: package for package in packages}
    app.extensions["providers"] = {package.name: package.build(app.config) for package in packages}
    app.extensions["providers_with_settings"] = {}
    app.extensions["provider_labels"] = {package.name: package.label for package in packages}
    app.extensions["provider_tasks"] = [task for package in packages for task in package.worker_tasks()]
    for package in packages:
        for blueprint in package.blueprints():
            app.register_blueprint(blueprint)


def provider_names() -> tuple[str, ...]:
    return tuple(current_app.extensions["providers"])


def provider_for(name: str, settings: dict[str, str] | None = None) -> VideoProvider:
    """The provider `name`, with the environment's settings or, when a platform sets some of its
    own (`settings`, as lti/platform_settings.py keeps them), with those over the environment's.
    One instance per distinct set of settings, built on first use."""
    providers = current_app.extensions["providers"]
    if name not in providers:
        raise ProviderMisconfigured(
            f"video provider {quoted(name)} is not available on this installation",
            user_message=(
                "This class uses a video service this site does not offer. "
                "Please tell your teacher or your site's support."
            ),
        )
    package = current_app.extensions["provider_packages"][name]
    own = {s.name: s.read(settings[s.name]) for s in package.settings if s.name in (settings or {})}
    if not own:
        return providers[name]
    built = current_app.extensions["providers_with_settings"]
    key = (name, tuple(sorted(own.items())))
    if key not in built:
        built[key] = package.build({**current_app.config, **own})
    return built[key]


def is_ready(name: str, settings: dict[str, str] | None = None) -> bool:
    """True when the provider exists here and is configured (for a platform with `settings`)."""
    if name not in current_app.extensions["providers"]:
        return False
    return provider_for(name, settings).is_configured()


def all_providers() -> list[VideoProvider]:
    return list(current_app.extensions["providers"].values())
