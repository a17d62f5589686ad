"""QGIS glue: plugin class and Processing provider."""
