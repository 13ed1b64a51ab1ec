"""Which operations a SavedModel's functions would run, and which of them reach outside the model.

A SavedModel backbone (a local folder or a TF Hub download) is a program, not only weights: its
functions may write or read files (``WriteFile``, ``ReadFile``, summary writers, checkpoint ops),
run Python (``PyFunc``, ``EagerPyFunc``) or print to a file (``PrintV2``). Such an op would run at
every training step and ship inside every export, so a backbone that calls one is refused before it
is used (``check_functions``), and an export is checked for them too (``savedmodel_problem``).

The functions are read as graphs (``ConcreteFunction.graph``, with every function they call),
never run. Only the functions the model is called through are read: every SavedModel also holds
the checkpoint machinery (``SaveV2``, ``RestoreV2``) in functions that serving never calls.
"""

from __future__ import annotations

from collections.abc import Iterable

UNSAFE_OPS = {  # op type → what it does, in words
    "WriteFile": "writes files",
    "ReadFile": "reads files",
    "MatchingFiles": "lists files",
    "PyFunc": "runs Python code",
    "PyFuncStateless": "runs Python code",
    "EagerPyFunc": "runs Python code",
    "SaveV2": "writes checkpoint files",
    "Save": "writes checkpoint files",
    "SaveSlices": "writes checkpoint files",
    "MergeV2Checkpoints": "writes checkpoint files",
    "RestoreV2": "reads checkpoint files",
    "Restore": "reads checkpoint files",
    "RestoreSlice": "reads checkpoint files",
    "CreateSummaryFileWriter": "writes summary files",
    "CreateSummaryDbWriter": "writes summary files",
    "WriteSummary": "writes summary files",
    "WriteScalarSummary": "writes summary files",
    "WriteHistogramSummary": "writes summary files",
    "WriteImageSummary": "writes summary files",
    "WriteAudioSummary": "writes summary files",
    "WriteGraphSummary": "writes summary files",
    "WriteRawProtoSummary": "writes summary files",
    "DatasetToTFRecord": "writes files",
    "ExperimentalDatasetToTFRecord": "writes files",
    "SaveDataset": "writes files",
    "SaveDatasetV2": "writes files",
    "TFRecordDataset": "reads files",
    "TFRecordDatasetV2": "reads files",
    "TextLineDataset": "reads files",
    "FixedLengthRecordDataset": "reads files",
    "FixedLengthRecordDatasetV2": "reads files",
    "InitializeTableFromTextFile": "reads files",
    "InitializeTableFromTextFileV2": "reads files",
    "DebugIdentityV2": "writes debug files",
    "DebugIdentityV3": "writes debug files",
}
SAFE_PRINT_STREAMS = ("stderr", "stdout", "log(info)", "log(warning)", "log(error)")


def unsafe_ops(graph_defs: Iterable) -> list[str]:
    """The unsafe operations in graphs and every function they hold, in words, each once.

    Args:
        graph_defs: ``tf.compat.v1.GraphDef`` protos (their ``library`` functions are read too).

    Returns:
        Sorted phrases like "WriteFile (writes files)"; [] when the graphs are self-contained.

    Example:
        >>> unsafe_ops([])
        []
    """
    found: set[str] = set()
    for graph in graph_defs:
        nodes = list(graph.node)
        for function in graph.library.function:
            nodes.extend(function.node_def)
        for node in nodes:
            if node.op in UNSAFE_OPS:
                found.add(f"{node.op} ({UNSAFE_OPS[node.op]})")
            elif node.op == "PrintV2":
                stream = (
                    node.attr["output_stream"].s.decode(errors="replace")
                    if "output_stream" in node.attr
                    else ""
                )
                if stream and stream not in SAFE_PRINT_STREAMS:
                    found.add(f"PrintV2 to {stream} (writes files)")
    return sorted(found)


def concrete_functions(fn) -> list:
    """The traced functions behind a callable of a loaded SavedModel (a restored ``tf.function``
    has one per input signature; a signature is one itself)."""
    if hasattr(fn, "graph"):
        return [fn]
    return list(getattr(fn, "concrete_functions", None) or [])


def check_functions(functions: Iterable, what: str) -> None:
    """Refuse ``what`` when a function would run an unsafe operation.

    Args:
        functions: concrete functions (``concrete_functions``).
        what: the model in words, for the message ("the SavedModel backbone /path").

    Raises:
        BackboneError: one line naming the operations and what they do.
    """
    from tlstudio.core.backbone.sources import BackboneError

    found = unsafe_ops(f.graph.as_graph_def() for f in functions)
    if found:
        raise BackboneError(
            f"{what} runs operations that reach outside the model: {', '.join(found)}; they would run at "
            "every step and ship in every export, so it is refused (re-export it without them)"
        )


def savedmodel_problem(folder: str) -> str | None:
    """Why a SavedModel's served functions are not self-contained (None when they are): every
    signature and the ``serve``/``__call__`` functions are read. Loads the model (not its data)."""
    import tensorflow as tf

    return loaded_problem(tf.saved_model.load(str(folder)))


def loaded_problem(loaded) -> str | None:
    """``savedmodel_problem`` of a SavedModel already loaded (``tf.saved_model.load``)."""
    functions = [f for s in getattr(loaded, "signatures", {}).values() for f in concrete_functions(s)]
    for name in ("serve", "serving_bytes", "classify", "__call__"):
        fn = getattr(loaded, name, None)
        if fn is not None:
            functions.extend(concrete_functions(fn))
    found = unsafe_ops(f.graph.as_graph_def() for f in functions)
    return f"it runs {', '.join(found)}" if found else None
