"""Pure-Python core of the spatiotemporal fusion plugin.

Nothing in this package imports ``qgis``: it runs in tests, on a command line and on a GPU machine that has
torch and GDAL but no QGIS. Heavy packages (torch) are imported lazily by the modules that need them.
"""
