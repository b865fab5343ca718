"""Loaded by benchmarks/profile_site.py (PYTHONPATH) into ansible-playbook and its forked workers: times each task's
execution and counts the Jinja templates compiled for it, one JSON line per task into $GPUINFER_PROFILE_OUT. Each
line also carries the task's action, its role and its start and end (time.time()), so the gaps between tasks (the
controller's own work: loading an included role, queueing the next task, forking its worker) can be told apart."""
import os

if os.environ.get("GPUINFER_PROFILE_OUT"):
    import builtins
    import functools
    import json
    import time

    _import = builtins.__import__
    _patched = []

    def _patch():
        import jinja2
        from ansible.executor import task_executor

        compiled = [0]
        compile_seconds = [0.0]
        original_compile = jinja2.Environment.compile

        @functools.wraps(original_compile)
        def counting_compile(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return original_compile(self, *args, **kwargs)
            finally:
                compiled[0] += 1
                compile_seconds[0] += time.perf_counter() - start

        jinja2.Environment.compile = counting_compile
        original_run = task_executor.TaskExecutor.run

        @functools.wraps(original_run)
        def timed_run(self, *args, **kwargs):
            compiled[0], compile_seconds[0] = 0, 0.0
            started = time.time()
            start = time.perf_counter()
            result = {}
            try:
                result = original_run(self, *args, **kwargs)
                return result
            finally:
                with open(os.environ["GPUINFER_PROFILE_OUT"], "a") as out:
                    role = self._task._role
                    out.write(json.dumps({"task": self._task.get_name(), "seconds": time.perf_counter() - start,
                                          "templates": compiled[0], "compile_seconds": compile_seconds[0],
                                          "action": self._task.action, "role": role.get_name() if role else None,
                                          "start": started, "end": time.time(),
                                          "skipped": bool(isinstance(result, dict) and result.get("skipped"))}) + "\n")

        task_executor.TaskExecutor.run = timed_run

    def _hook(name, *args, **kwargs):
        module = _import(name, *args, **kwargs)
        if not _patched and name.startswith("ansible.executor.task_executor"):
            _patched.append(True)
            _patch()
        return module

    builtins.__import__ = _hook
