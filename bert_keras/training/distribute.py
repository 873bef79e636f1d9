"""tf.distribute strategies by name, which worker writes, and lost workers.

A training script gets the strategy the task CLIs use in one line:

    strategy = make_strategy("multiworker")  # reads TF_CONFIG
    with strategy.scope():
        model = BertForSequenceClassification.from_pretrained(...)
        model.compile()

Batch sizes given to `fit` are global (all replicas together). Only the chief
writes outputs (`is_chief`); the other workers write to temporary places that
are removed (`output_directory`), the tf.distribute convention. See
docs/distributed.md.
"""

import contextlib
import json
import os
import shutil
import tempfile

import tensorflow as tf

from bert_keras.errors import WorkerLostError

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")

# A collective step that waits longer than this for a peer fails (a worker
# that is alive but stuck); a killed worker is found sooner, by TensorFlow's
# coordination service heartbeats (about 10 s).
DEFAULT_COLLECTIVE_TIMEOUT = 600.0

# What a collective op raises when a peer died or timed out.
_PEER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)


def make_strategy(
    name="default", *, collective_timeout=DEFAULT_COLLECTIVE_TIMEOUT, tpu=None
):
    """Returns the tf.distribute strategy called `name`.

    Args:
        name: str, one of `STRATEGIES`:
            "default": TensorFlow's default strategy (one device).
            "mirrored": `MirroredStrategy` over this machine's GPUs, or over
                its logical CPU devices when it has none.
            "multiworker": `MultiWorkerMirroredStrategy`, configured by the
                `TF_CONFIG` environment variable of each worker.
            "tpu": `TPUStrategy` on the TPU that `TPUClusterResolver(tpu)` finds.
        collective_timeout: float, seconds a multi-worker collective may wait
            for its peers before the step fails (0 or None: wait forever).
        tpu: str or None, the TPU name or address for "tpu" (None: the
            environment's, as on a Cloud TPU VM).

    Returns:
        A `tf.distribute.Strategy`.

    Example:

    >>> strategy = make_strategy("default")
    >>> with strategy.scope():
    ...     model = BertForSequenceClassification(config)
    ...     model.compile()
    >>> strategy.num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}. Expected one of {', '.join(STRATEGIES)}."
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices(
            "GPU"
        ) or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        cluster = _tf_config().get("cluster")
        if not cluster:
            raise ValueError(
                "--strategy multiworker needs the TF_CONFIG environment variable, "
                "with the cluster and this worker's task, e.g. TF_CONFIG="
                '\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}\' on the first worker '
                "(index 1 on the second). See docs/distributed.md."
            )
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=collective_timeout or None
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return _tpu_strategy(tpu)


def _tpu_strategy(tpu):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as error:
        raise ValueError(
            f"--strategy tpu found no TPU ({type(error).__name__}: {error}). "
            "Run on a Cloud TPU VM, or pass the TPU's name or grpc:// address "
            "(--tpu NAME), or choose --strategy default|mirrored|multiworker."
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def _tf_config():
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}). Expected e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}.'
        ) from error


def is_chief(strategy=None):
    """Whether this process is the one that writes (the chief, or worker 0).

    Single-process strategies are always the chief. In a multi-worker cluster
    the chief is the task of type "chief", or worker 0 when there is none.
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    jobs = resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in jobs


def worker_count(strategy=None):
    """How many workers (processes) train together under `strategy`."""
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return max(1, sum(len(jobs.get(job, ())) for job in ("chief", "worker")))


@contextlib.contextmanager
def output_directory(path, strategy=None):
    """Yields where this process writes its outputs meant for `path`.

    The chief gets `path` itself. Every other worker gets a new temporary
    directory, removed on exit (even after an error): it runs the same saves
    as the chief, since a save may take part in collectives, but its files are
    never seen.
    """
    if is_chief(strategy):
        yield path
        return
    scratch = tempfile.mkdtemp(prefix="bert_keras-worker-")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def peer_errors_as_worker_lost(strategy, backup_dir=None):
    """Turns a failed multi-worker collective into a `WorkerLostError`."""
    try:
        yield
    except _PEER_ERRORS as error:
        if worker_count(strategy) < 2:
            raise
        resume = (
            f"the last backup in {backup_dir}"
            if backup_dir
            else "the last backup (if a ResumableCheckpoint callback made one)"
        )
        raise WorkerLostError(
            "Multi-worker training stopped: a peer worker was lost or stuck "
            f"({type(error).__name__}: {_first_line(error)}). This worker "
            "cannot go on alone, since every step all-reduces across workers. "
            "Rerun the same command on every worker; training resumes from "
            f"{resume}."
        ) from error


def _first_line(error):
    """The line of TensorFlow's message that names the failure (and its task)."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    for index, line in enumerate(lines):
        if "unhealthy" in line or "timed out" in line.lower() or "abort" in line:
            if line.endswith(":") and index + 1 < len(lines):
                return f"{line} {lines[index + 1]}"
            return line
    return lines[0] if lines else ""
