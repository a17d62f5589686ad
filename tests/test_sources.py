"""Any GDAL-openable source is an input (issue 26, item 5): cloud-optimised GeoTIFFs served over HTTP (/vsicurl/,
from a server on 127.0.0.1 started by the test, with range requests as real object stores answer them) and files
inside a zip (/vsizip/) give byte-identical predictions to the same files on disk."""
import glob
import http.server
import os
import threading
import zipfile

import numpy as np
import pytest
from osgeo import gdal

from stf_fusion.core.fusion import fuse_method
from stf_fusion.core.raster import read_raw
from stf_fusion.core.series import build_series


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP range requests (GDAL's /vsicurl/ reads COGs in ranges)."""

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            start, _, end = ranged[6:].partition("-")
            start, end = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            body = data[start:end + 1]
        else:
            self.send_response(200)
            body = data
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):  # noqa: N802
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.end_headers()


@pytest.fixture()
def served(sample_on_fine_grid, tmp_path):
    """The sample's fine and (fine-grid) coarse images as COGs, served over HTTP on 127.0.0.1."""
    folder = tmp_path / "www"
    folder.mkdir()
    for item in list(sample_on_fine_grid.fine) + list(sample_on_fine_grid.coarse):
        gdal.Translate(str(folder / os.path.basename(item.path)), item.path, format="COG")
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gdal.SetConfigOption("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        gdal.SetConfigOption("GDAL_DISABLE_READDIR_ON_OPEN", None)


def _names(folder, kind):
    return sorted(os.path.basename(p) for p in glob.glob(str(folder / f"{kind}_*.tif")))


def test_vsicurl_and_vsizip_inputs_give_the_same_prediction(served, tmp_path):
    folder, url = served
    local = build_series([str(folder / n) for n in _names(folder, "fine")],
                         [str(folder / n) for n in _names(folder, "coarse")])
    remote = build_series([f"/vsicurl/{url}/{n}" for n in _names(folder, "fine")],
                          [f"/vsicurl/{url}/{n}" for n in _names(folder, "coarse")])
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in glob.glob(str(folder / "*.tif")):
            zf.write(path, os.path.basename(path))
    zipped = build_series([f"/vsizip/{archive}/{n}" for n in _names(folder, "fine")],
                          [f"/vsizip/{archive}/{n}" for n in _names(folder, "coarse")])
    date = local.predict_dates[:1]
    expected = read_raw(fuse_method("starfm", local, date, str(tmp_path / "a"), 1e-4, device="cpu")[0])
    for name, series in (("remote", remote), ("zipped", zipped)):
        got = read_raw(fuse_method("starfm", series, date, str(tmp_path / name), 1e-4, device="cpu")[0])
        np.testing.assert_array_equal(got, expected)


def test_a_missing_remote_file_is_a_clear_error(served):
    from stf_fusion.core.errors import InputError

    _, url = served
    with pytest.raises(InputError, match="missing.tif"):
        build_series([f"/vsicurl/{url}/missing.tif"], [f"/vsicurl/{url}/missing2.tif"])
