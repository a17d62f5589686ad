"""QGIS entry point of the Spatiotemporal Fusion plugin (the repository root is the plugin folder)."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Called by QGIS (with ``iface=None`` under qgis_process) to create the plugin object."""
    from .stf_plugin.plugin import StfPlugin

    return StfPlugin(iface)
