"""What the coordinator hands a worker: one notebook to execute, and the limits it runs under.

Plain data, picklable (the local pool and Dask send it as it is); the worker, the notebook's
process and the judge rebuild :class:`Limits` from the dict they are handed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Limits:
    """Resource limits for one notebook's process tree."""

    cell_timeout: float = 60.0  # seconds of wall time per cell
    notebook_timeout: float = 300.0  # seconds of wall time for the whole notebook
    memory_mb: int = 4096  # memory of the whole process tree (per process without root)
    max_processes: int = 64  # processes and threads (fork bombs)
    max_output_chars: int = 200_000  # per stream, per cell
    max_rich_chars: int = 5_000_000  # figures, HTML, results: all of a cell's rich output
    max_file_mb: int = 200  # largest file the notebook may write
    tmp_mb: int = 256  # each of /tmp, /dev/shm and home (memory-backed, gone afterwards)
    job_mb: int = 512  # the job folder /job: its files and what the notebook writes there
    max_result_mb: int = 64  # everything the process may send back


@dataclass
class Job:
    """One notebook to execute: code cells by index, plus files for its working directory."""

    key: str  # "student/assignment/notebook", for messages
    cells: dict[int, str]  # cell index -> source of a code cell
    files: dict[str, bytes] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    sandbox: bool = True  # required: a machine that cannot isolate runs nothing
    protect: list[str] = field(default_factory=list)  # paths never exposed (the course)
    canaries: list[Job] = field(default_factory=list)  # run once per worker, results attached
    tests: list[int] = field(default_factory=list)  # graded test cells: run by the judge
    setup: str = ""  # the notebook's locked setup code: its imports are the judge's
    judge: bool = False  # test cells in a judge process (grader.engine.judge.processes)
