"""ResumableCheckpoint: atomic per-epoch checkpoints and resuming from them."""

import numpy as np
import pytest
from conftest import tiny_config

import bert_keras as bk
from bert_keras.training.callbacks import ResumableCheckpoint


def _data():
    rs = np.random.RandomState(0)
    return {"input_ids": rs.randint(5, 99, (8, 10))}, rs.randint(0, 3, 8)


def _model():
    model = bk.BertForSequenceClassification(
        tiny_config("BertForSequenceClassification")
    )
    model.compile()
    return model


def test_resumes_from_the_newest_checkpoint_and_keeps_the_last_two(tmp_path):
    x, y = _data()
    first = _model()
    callback = ResumableCheckpoint(tmp_path, keep=2)
    first.fit(x, y, epochs=3, batch_size=4, callbacks=[callback], verbose=0)
    assert [epoch for epoch, _ in callback.checkpoints()] == [3, 2]

    resumed = _model()
    callback = ResumableCheckpoint(tmp_path, keep=2)
    history = resumed.fit(x, y, epochs=4, batch_size=4, callbacks=[callback], verbose=0)
    assert callback.restored_epoch == 3
    assert len(history.history["loss"]) == 1  # only epoch 4 was left to run
    assert int(resumed.optimizer.iterations.numpy()) == 8


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0,
              callbacks=[ResumableCheckpoint(tmp_path)])  # fmt: skip
    weights = tmp_path / "epoch-000002" / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (tmp_path / ".partial-epoch-000003").mkdir()  # a write cut short

    resumed = _model()
    callback = ResumableCheckpoint(tmp_path)
    with caplog.at_level("WARNING"):
        resumed.fit(x, y, epochs=2, batch_size=4, callbacks=[callback], verbose=0)
    assert callback.restored_epoch == 1
    assert "epoch-000002 cannot be restored" in caplog.text
    assert not (tmp_path / ".partial-epoch-000003").exists()
    assert int(resumed.optimizer.iterations.numpy()) == 4


def test_keep_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="keep"):
        ResumableCheckpoint(tmp_path, keep=0)


def test_delete_on_end_backs_up_every_epoch_but_the_last(tmp_path):
    x, y = _data()
    model = _model()
    written = []

    class Watch(ResumableCheckpoint):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            written.append(sorted(p.name for p in tmp_path.glob("epoch-*")))

    callback = Watch(tmp_path, keep=1, delete_on_end=True)
    model.fit(x, y, epochs=3, batch_size=4, callbacks=[callback], verbose=0)
    # Epochs 1 and 2 are backed up as they end; the run completes after
    # epoch 3, so its backup is never written and the directory is removed.
    assert written == [["epoch-000001"], ["epoch-000002"], ["epoch-000002"]]
    assert not tmp_path.exists()
