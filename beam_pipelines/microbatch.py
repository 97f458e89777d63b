"""Run a graph of Beam composites on one in-memory micro-batch at a time, in this process.

Beam's local runners do not fit a low-latency stream here (measured, see BENCHMARKS.md,
"Streaming"): the Python DirectRunner pulls 10 messages per call and runs one bundle at a time
(50–150 msg/s), and the FnApiRunner only runs bounded pipelines, at about 0.25 s of fixed cost
per run. :class:`MicroBatchGraph` keeps the graph and drops the runner: the caller wires the
*same* composites as the Dataflow job onto a throwaway pipeline (``build(input) -> outputs``),
and each :meth:`MicroBatchGraph.run` pushes a list of elements through the expanded graph's
ParDos in topological order, calling each DoFn's ``start_bundle`` / ``process`` /
``finish_bundle`` as a runner's bundle would, and routing ``TaggedOutput`` s to their tags.

Supported: ParDo / Map / FlatMap whose ``process`` takes just the element (everything the ingest
composites use) and Flatten, in the global window. Anything else (GroupByKey, side inputs,
timestamps, batched DoFns) is refused by name when the graph is built, so a step that starts
to need a real runner fails a test instead of misbehaving.
"""

from __future__ import annotations

import inspect
from typing import Callable

import apache_beam as beam
from apache_beam.pipeline import PipelineVisitor
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms import core
from apache_beam.utils.windowed_value import WindowedValue

_SPECIAL_PARAMS = tuple(getattr(beam.DoFn, name) for name in dir(beam.DoFn) if name.endswith("Param"))


class UnsupportedStep(NotImplementedError):
    pass


class _Step:
    def __init__(self, label: str, fn: beam.DoFn, args, kwargs, input_id: int, outputs: dict):
        self.label, self.fn, self.args, self.kwargs = label, fn, args, kwargs
        self.input_id = input_id
        self.main_id = id(outputs[None])
        self.tagged = {tag: id(pc) for tag, pc in outputs.items() if tag is not None}


def _check_fn(label: str, fn: beam.DoFn) -> None:
    if type(fn).process_batch is not beam.DoFn.process_batch:
        raise UnsupportedStep(f"{label}: batched DoFns (process_batch) need a Beam runner")
    for param in inspect.signature(fn.process).parameters.values():
        if any(param.default is special for special in _SPECIAL_PARAMS):
            raise UnsupportedStep(f"{label}: DoFn parameter {param.name}={param.default!r} needs a Beam runner")


class _Collect(PipelineVisitor):
    def __init__(self):
        self.steps: list = []

    def visit_transform(self, node):
        transform, label = node.transform, node.full_label
        if isinstance(transform, core.Impulse):
            return  # the input placeholder
        if isinstance(transform, beam.Flatten):
            self.steps.append(("flatten", [id(pc) for pc in node.inputs], id(node.outputs[None])))
            return
        if not isinstance(transform, beam.ParDo):
            raise UnsupportedStep(f"{label}: {type(transform).__name__} needs a Beam runner")
        if transform.side_inputs:
            raise UnsupportedStep(f"{label}: side inputs need a Beam runner")
        fn = transform.fn
        _check_fn(label, fn)
        (main_input,) = node.inputs
        self.steps.append(_Step(label, fn, transform.args, transform.kwargs, id(main_input), dict(node.outputs)))


class MicroBatchGraph:
    """``build(input_pcollection) -> {name: PCollection}``, runnable on lists of elements.

    DoFns are set up once (``setup``) and torn down by :meth:`close`; each :meth:`run` is one
    bundle. The outputs named by ``build`` come back as lists.
    """

    def __init__(self, build: Callable):
        pipeline = beam.Pipeline()
        source = pipeline | "Input" >> beam.Impulse()
        outputs = build(source)
        self._source_id = id(source)
        self._outputs = {name: id(pc) for name, pc in outputs.items()}
        collect = _Collect()
        pipeline.visit(collect)
        self._steps = collect.steps
        self._fns = [s.fn for s in self._steps if isinstance(s, _Step)]
        for fn in self._fns:
            fn.setup()

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self._steps if isinstance(s, _Step)]

    def run(self, elements: list) -> dict[str, list]:
        values: dict[int, list] = {self._source_id: list(elements)}
        for step in self._steps:
            if isinstance(step, tuple):  # flatten
                _, input_ids, output_id = step
                values[output_id] = [e for i in input_ids for e in values.get(i, [])]
                continue
            main = values.setdefault(step.main_id, [])
            tagged = {tag: values.setdefault(pc_id, []) for tag, pc_id in step.tagged.items()}

            def route(output, step=step, main=main, tagged=tagged):
                if isinstance(output, TaggedOutput):
                    tagged[output.tag].append(output.value)
                elif isinstance(output, WindowedValue):
                    main.append(output.value)
                else:
                    main.append(output)

            fn = step.fn
            for output in fn.start_bundle() or ():
                route(output)
            for element in values.get(step.input_id, ()):
                for output in fn.process(element, *step.args, **step.kwargs) or ():
                    route(output)
            for output in fn.finish_bundle() or ():
                route(output)
        return {name: values.get(pc_id, []) for name, pc_id in self._outputs.items()}

    def close(self) -> None:
        for fn in self._fns:
            fn.teardown()
