"""Readers of downloaded satellite products (Landsat Collection 2 Level-2, Sentinel-2 L2A, HLS, MODIS and VIIRS
tiles) and stf:prepare_series, which turns them into the series the fusion algorithms take (prepare.py)."""
