"""QGIS entry point of the Spatiotemporal Fusion plugin (the repository root is the plugin folder)."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Called by QGIS (with ``iface=None`` under qgis_process) to create the plugin object."""
    from .core.installer import activate
    from .stf_plugin.plugin import StfPlugin

    activate()  # PyTorch and numba installed by the plugin (its private folder, after QGIS's own packages)

    return StfPlugin(iface)
