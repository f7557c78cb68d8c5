"""Every training run's MLflow model (`runs:/<run id>/model`): it loads with MLflow's own API
and predicts exactly predict.py's masks (or instances), alone, in a batch and served over HTTP
by `mlflow models serve`; predict.py and eval.py read it through `model_uri=`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image
from pycocotools import mask as mask_utils

from seglab.cli.evaluate import evaluate
from seglab.cli.predict import predict
from seglab.data.io import read_image
from seglab.serving.log_model import log_run_model
from tests.conftest import compose_entry, new_store
from tests.servers import free_port, wait_until_answering
from tests.test_mask_rcnn_predict import mask_rcnn_ckpt  # noqa: F401 - a fixture

SERVE_TIMEOUT_S = 180  # the server imports torch and loads the model before /ping answers


def _images(folder: Path) -> list[Path]:
    """Two images predict.py must map back: one not a multiple of the stride, one larger than
    the training crop (64 px), both RGB uint8 PNGs."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, size in (("odd", (50, 70)), ("large", (96, 80))):
        path = folder / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def served(tiny_checkpoint: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """predict.py's masks of the test images with the run's best checkpoint, and the images."""
    tmp = tmp_path_factory.mktemp("model_logging")
    images = _images(tmp / "images")
    best = tiny_checkpoint["out"] / "checkpoints" / "best.ckpt"
    overrides = [f"ckpt_path={best}", f"input={tmp / 'images'}", f"output={tmp / 'out'}"]
    written = predict(compose_entry("predict", [*overrides, "progress_bar=false"], tmp / "h"))
    masks = {path.name.removesuffix("_mask.png"): np.array(Image.open(path)) for path in written}
    return {"images": images, "masks": masks, "tmp": tmp}


@pytest.fixture(scope="module")
def pyfunc_model(tiny_checkpoint: dict) -> mlflow.pyfunc.PyFuncModel:
    mlflow.set_tracking_uri(tiny_checkpoint["tracking_uri"])
    try:
        return mlflow.pyfunc.load_model(f"runs:/{tiny_checkpoint['run_id']}/model")
    finally:
        mlflow.set_tracking_uri(None)


def test_logged_model_predicts_predict_py_masks(served: dict, pyfunc_model) -> None:  # noqa: ANN001
    for path in served["images"]:
        image = read_image(path, 3)
        mask = pyfunc_model.predict(image)
        assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
        np.testing.assert_array_equal(mask, served["masks"][path.stem])
    odd = read_image(served["images"][0], 3)
    flipped = odd[:, ::-1].copy()
    batch = pyfunc_model.predict(np.stack([odd, flipped]))
    assert batch.shape == (2, *odd.shape[:2])
    np.testing.assert_array_equal(batch[0], served["masks"]["odd"])
    np.testing.assert_array_equal(batch[1], pyfunc_model.predict(flipped))


def test_logged_model_carries_signature_example_and_weights_only(
    tiny_checkpoint: dict,
    pyfunc_model,  # noqa: ANN001
) -> None:
    meta = pyfunc_model.metadata
    assert meta.signature is not None and meta.signature.outputs is not None
    assert meta.saved_input_example_info is not None
    assert meta.metadata["seglab.class_names"][0] == "background"
    client = MlflowClient(tiny_checkpoint["tracking_uri"])
    run = client.get_run(tiny_checkpoint["run_id"])
    (output,) = run.outputs.model_outputs
    model = client.get_logged_model(output.model_id)
    assert model.name == "model" and model.status.to_proto() == model.status.READY.to_proto()
    assert model.experiment_id == run.info.experiment_id
    files = {f.path for f in client.list_logged_model_artifacts(model.model_id)}
    assert "python_model.pkl" not in files  # a model from code: nothing pickled


def test_mlflow_models_serve_answers_with_the_mask(tiny_checkpoint: dict, served: dict) -> None:
    port = free_port()
    # The environment's bin/ on PATH, as in an activated venv: MLflow starts `uvicorn` by name.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": tiny_checkpoint["tracking_uri"]}
    cmd = [
        sys.executable, "-m", "mlflow", "models", "serve",
        "-m", f"runs:/{tiny_checkpoint['run_id']}/model", "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(port), "-w", "1",
    ]  # fmt: skip
    log = served["tmp"] / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/ping"
        wait_until_answering(url, server, log, "mlflow models serve", SERVE_TIMEOUT_S)
        image = read_image(served["images"][0], 3)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": image.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        mask = np.asarray(answer["predictions"], dtype=np.uint8)
        np.testing.assert_array_equal(mask, served["masks"]["odd"])
    finally:
        if server.poll() is None:  # uvicorn serves from a worker process of its own
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_predict_and_eval_take_model_uri(tiny_checkpoint: dict, served: dict) -> None:
    tmp, uri = served["tmp"], tiny_checkpoint["tracking_uri"]
    model_uri = f"runs:/{tiny_checkpoint['run_id']}/model"
    overrides = [f"model_uri={model_uri}", f"tracking_uri={uri}", f"input={tmp / 'images'}",
                 f"output={tmp / 'by_uri'}", "progress_bar=false"]  # fmt: skip
    for path in predict(compose_entry("predict", overrides, tmp / "h2")):
        masks = served["masks"][path.name.removesuffix("_mask.png")]
        np.testing.assert_array_equal(np.array(Image.open(path)), masks)
    args = [f"model_uri={model_uri}", f"tracking_uri={uri}", "log_mlflow=false",
            f"data.root={tiny_checkpoint['data_root']}", "data.num_workers=0",
            "progress_bar=false", "accelerator=cpu"]  # fmt: skip
    metrics = evaluate(compose_entry("eval", args, tmp / "eval"))
    assert metrics["test/mIoU"] == pytest.approx(tiny_checkpoint["val_miou"], abs=1e-6)


def test_mask_rcnn_model_predicts_predict_py_instances(
    mask_rcnn_ckpt: Path,  # noqa: F811
    tiny_synthetic_root: Path,
    tmp_path: Path,
) -> None:
    uri = new_store(tmp_path / "store")
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("maskrcnn"))
    log_run_model(mask_rcnn_ckpt, run.info.run_id, uri)
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    finally:
        mlflow.set_tracking_uri(None)
    image_path = next((tiny_synthetic_root / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))
    out = tmp_path / "out"
    overrides = [f"ckpt_path={mask_rcnn_ckpt}", f"input={image_path}", f"output={out}",
                 "progress_bar=false", "score_thresh=0.0"]  # fmt: skip
    predict(compose_entry("predict", overrides, tmp_path / "h"))
    expected = json.loads((out / f"{image_path.stem}_instances.json").read_text())
    found = model.predict(read_image(image_path, 3), params={"score_thresh": 0.0})
    assert expected and len(found["scores"]) == len(expected)
    for i, entry in enumerate(expected):
        assert found["labels"][i] == entry["category_id"]
        assert round(float(found["scores"][i]), 5) == entry["score"]
        x0, y0, x1, y1 = found["boxes"][i].tolist()
        assert [round(v, 2) for v in (x0, y0, x1 - x0, y1 - y0)] == entry["bbox"]
        rle = {**entry["segmentation"], "counts": entry["segmentation"]["counts"].encode()}
        np.testing.assert_array_equal(found["masks"][i], mask_utils.decode(rle))
    batch = model.predict(np.stack([read_image(image_path, 3)] * 2))
    assert len(batch) == 2 and set(batch[0]) == {"boxes", "labels", "scores", "masks"}
