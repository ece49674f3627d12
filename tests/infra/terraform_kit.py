"""What ``infra/terraform`` would create for a set of variables, read from its HCL with python-hcl2.

Terraform cannot plan here (its providers come from its own registry), so this evaluates the subset of
HCL the module uses: variables with defaults, local modules, ``var.``/``module.``/``each.`` references,
string templates, ``dynamic`` blocks, resource ``for_each`` over ``toset(...)``. Anything else (attributes
known only after apply, such as an ARN, and functions like ``filebase64sha256``) stays symbolic: ``Ref``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

_WHOLE = re.compile(r"^\$\{(.*)\}$", re.S)
_PART = re.compile(r"\$\{([^}]*)\}")
_REF = re.compile(r"^[A-Za-z_][\w\-]*(\.[\w\-]+)*$")
_CALL = re.compile(r"^(toset|distinct)\((.*)\)$", re.S)


@dataclass(frozen=True)
class Ref:
    """A value Terraform knows only after apply (or an expression this reader does not evaluate)."""

    expr: str

    def __str__(self) -> str:
        return f"<{self.expr}>"


@dataclass
class Planned:
    """One resource (or data source) instance: its type, name and evaluated arguments."""

    module: str
    type: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


class PlanError(Exception):
    """The HCL refers to something it does not declare (Terraform would refuse to plan)."""


def _unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


def _load(directory: Path) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as f:
            for key, blocks in hcl2.load(f).items():
                merged.setdefault(key, []).extend(blocks)
    return merged


def _labelled(blocks: list[Any], depth: int) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """``resource "type" "name" {...}`` blocks as ((type, name), body)."""
    out = []
    for block in blocks:
        stack: list[tuple[tuple[str, ...], Any]] = [((), block)]
        while stack:
            labels, node = stack.pop()
            if len(labels) == depth:
                out.append((labels, node))
                continue
            for label, child in node.items():
                stack.append(((*labels, _unquote(label)), child))
    return out


class _Scope:
    def __init__(self, name: str, variables: dict[str, Any], modules: dict[str, dict[str, Any]]) -> None:
        self.name = name
        self.variables = variables
        self.modules = modules
        self.iterators: dict[str, dict[str, Any]] = {}

    def with_iterator(self, name: str, key: Any, value: Any) -> _Scope:
        scope = _Scope(self.name, self.variables, self.modules)
        scope.iterators = {**self.iterators, name: {"key": key, "value": value}}
        return scope

    def expression(self, expr: str) -> Any:
        expr = expr.strip()
        call = _CALL.match(expr)
        if call:
            items = self.expression(call.group(2))
            return list(dict.fromkeys(items)) if isinstance(items, list) else Ref(expr)
        if not _REF.match(expr):
            return Ref(f"{self.name}:{expr}")
        head, *path = expr.split(".")
        if head == "var":
            if path[0] not in self.variables:
                raise PlanError(f"{self.name}: var.{path[0]} is not declared")
            return _walk(self.variables[path[0]], path[1:], expr)
        if head == "module":
            if path[0] not in self.modules or path[1] not in self.modules[path[0]]:
                raise PlanError(f"{self.name}: {expr} is not an output of an evaluated module")
            return _walk(self.modules[path[0]][path[1]], path[2:], expr)
        if head in self.iterators:
            return _walk(self.iterators[head], path, expr)
        return Ref(f"{self.name}:{expr}")

    def value(self, raw: Any) -> Any:
        if isinstance(raw, str):
            whole = _WHOLE.match(raw)
            if whole and "${" not in whole.group(1):
                return self.expression(whole.group(1))
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                return _PART.sub(lambda m: str(self.expression(m.group(1))), raw[1:-1])
            return raw
        if isinstance(raw, list):
            return [self.value(v) for v in raw]
        if isinstance(raw, dict):
            return self.block(raw)
        return raw

    def block(self, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, raw in body.items():
            if key == "__is_block__":
                continue
            if key == "dynamic":
                for (label,), spec in _labelled(raw, 1):
                    out.setdefault(label, []).extend(self._dynamic(label, spec))
                continue
            out[_unquote(key)] = self.value(raw)
        return out

    def _dynamic(self, label: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        items = self.value(spec["for_each"])
        pairs = items.items() if isinstance(items, dict) else enumerate(items)
        iterator = self.value(spec.get("iterator", label))
        return [self.with_iterator(iterator, k, v).block(spec["content"][0]) for k, v in pairs]


def _walk(value: Any, path: list[str], expr: str) -> Any:
    for part in path:
        if isinstance(value, Ref):
            return Ref(f"{value.expr}.{part}")
        if not isinstance(value, dict) or part not in value:
            raise PlanError(f"{expr}: no {part!r} in {value!r}")
        value = value[part]
    return value


def plan(
    directory: Path, variables: dict[str, Any], name: str = "root"
) -> tuple[list[Planned], dict[str, Any]]:
    """What the module at ``directory`` creates with ``variables``, and its outputs."""
    hcl = _load(directory)
    declared = {labels[0]: body for labels, body in _labelled(hcl.get("variable", []), 1)}
    unknown = sorted(set(variables) - set(declared))
    if unknown:
        raise PlanError(f"{name}: values for undeclared variables {unknown}")
    values = {}
    for var, body in declared.items():
        if var in variables:
            values[var] = variables[var]
        elif "default" in body:
            values[var] = _Scope(name, {}, {}).value(body["default"])
        else:
            raise PlanError(f"{name}: variable {var!r} has no value and no default")
    scope = _Scope(name, values, {})
    planned: list[Planned] = []
    for (module,), body in _labelled(hcl.get("module", []), 1):
        source = directory / _unquote(body["source"])
        inputs = {k: scope.value(v) for k, v in body.items() if k not in ("source", "__is_block__")}
        resources, outputs = plan(source, inputs, f"{name}.{module}")
        planned.extend(resources)
        scope.modules[module] = outputs
    for kind, prefix in (("data", "data."), ("resource", "")):
        for (rtype, rname), body in _labelled(hcl.get(kind, []), 2):
            each = scope.value(body["for_each"]) if "for_each" in body else None
            if each is None:
                planned.append(Planned(name, prefix + rtype, rname, scope.block(body)))
                continue
            pairs = each.items() if isinstance(each, dict) else ((v, v) for v in each)
            for k, v in pairs:
                args = scope.with_iterator("each", k, v).block(body)
                planned.append(Planned(name, prefix + rtype, f"{rname}[{k}]", args))
    outputs = {labels[0]: scope.value(body["value"]) for labels, body in _labelled(hcl.get("output", []), 1)}
    if name != "root":
        return planned, outputs
    known = {f"{p.module}:{p.type}.{p.name}": p.args for p in planned}
    for p in planned:
        p.args = _resolved(p.args, known)
    return planned, _resolved(outputs, known)


def _resolved(value: Any, known: dict[str, dict[str, Any]]) -> Any:
    """``value`` with each reference to an argument given at plan time (a resource's ``name``) replaced
    by that argument's value."""
    if isinstance(value, Ref):
        resource, _, attribute = value.expr.rpartition(".")
        args = known.get(resource, {})
        return _resolved(args[attribute], known) if attribute in args else value
    if isinstance(value, dict):
        return {k: _resolved(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, known) for v in value]
    return value


def _of(planned: list[Planned], rtype: str) -> list[dict[str, Any]]:
    return [p.args for p in planned if p.type == rtype]


def _compare(problems: list[str], what: str, terraform: Any, local: Any) -> None:
    if terraform != local:
        problems.append(f"{what}: Terraform has {terraform!r}, the local stack / tier file has {local!r}")


def parity_problems(terraform_dir: Path, config_dir: Path, tier: str) -> list[str]:
    """Every difference between what Terraform would create for ``tier`` (with its committed
    ``tiers/<tier>.tfvars.json``) and what ``coattail up`` provisions and the tier file says."""
    import importlib
    import json

    from infra.provision import StackSpec, table_definition
    from infra.tfvars import tier_tfvars
    from pipeline.api.app import ROUTES
    from pipeline.config import ConfigLoader
    from pipeline.emr import EMR_RELEASES

    problems: list[str] = []
    committed = json.loads((terraform_dir / "tiers" / f"{tier}.tfvars.json").read_text())
    fresh = tier_tfvars(tier, config_dir)
    for key in sorted(set(committed) | set(fresh)):
        if committed.get(key) != fresh.get(key):
            problems.append(
                f"tiers/{tier}.tfvars.json is stale at {key}: {committed.get(key)!r}, the config says "
                f"{fresh.get(key)!r} (python -m infra.tfvars --write)"
            )
    config = ConfigLoader(config_dir).load(tier, env={})
    spec = StackSpec.from_config(config)
    planned, _ = plan(terraform_dir, committed)

    streams = {(s["name"], s["shard_count"]) for s in _of(planned, "aws_kinesis_stream")}
    _compare(problems, "kinesis streams (name, shards)", streams, {(s.name, s.shards) for s in spec.streams})

    created = table_definition(spec.alerts_table)
    tables = _of(planned, "aws_dynamodb_table")
    _compare(problems, "dynamodb tables", [t["name"] for t in tables], [created["TableName"]])
    for table in tables:
        _compare(problems, "alerts billing", table["billing_mode"], created["BillingMode"])
        _compare(problems, "alerts key", table["hash_key"], created["KeySchema"][0]["AttributeName"])
        attributes = {(a["name"], a["type"]) for a in table.get("attribute", [])}
        want = {(a["AttributeName"], a["AttributeType"]) for a in created["AttributeDefinitions"]}
        _compare(problems, "alerts attributes", attributes, want)
        indexes = {
            (i["name"], i["hash_key"], i["range_key"], i["projection_type"])
            for i in table.get("global_secondary_index", [])
        }
        want_indexes = {
            (i["IndexName"], i["KeySchema"][0]["AttributeName"], i["KeySchema"][1]["AttributeName"],
             i["Projection"]["ProjectionType"])
            for i in created["GlobalSecondaryIndexes"]
        }  # fmt: skip
        _compare(problems, "alerts indexes", indexes, want_indexes)
        ttl = [(t["attribute_name"], t["enabled"]) for t in table.get("ttl", [])]
        _compare(problems, "alerts TTL", ttl, [(spec.alerts_table.ttl_attribute, True)])

    buckets = {b["bucket"] for b in _of(planned, "aws_s3_bucket")}
    _compare(problems, "s3 buckets", buckets, set(spec.buckets))
    databases = {d["name"] for d in _of(planned, "aws_glue_catalog_database")}
    _compare(problems, "glue databases", databases, {spec.glue_database})

    emr = config.spark.emr
    apps = _of(planned, "aws_emrserverless_application")
    _compare(problems, "emr applications", len(apps), 1)
    for app in apps:
        _compare(problems, "emr release", app["release_label"], emr.release)
        initial = {
            c["initial_capacity_type"]: (
                c["initial_capacity_config"][0]["worker_count"],
                tuple(
                    c["initial_capacity_config"][0]["worker_configuration"][0][k]
                    for k in ("cpu", "memory", "disk")
                ),
            )
            for c in app.get("initial_capacity", [])
        }
        workers = {
            "Driver": (emr.initial_capacity.drivers, emr.driver),
            "Executor": (emr.initial_capacity.executors, emr.executor),
        }
        want_initial = {
            kind: (count, (f"{w.vcpu} vCPU", f"{w.memory_gb} GB", f"{w.disk_gb} GB"))
            for kind, (count, w) in workers.items()
        }
        _compare(problems, "emr initial capacity", initial, want_initial)
        ceiling = app["maximum_capacity"][0]
        top = emr.maximum_capacity
        _compare(
            problems,
            "emr maximum capacity",
            (ceiling["cpu"], ceiling["memory"], ceiling["disk"]),
            (f"{top.vcpu} vCPU", f"{top.memory_gb} GB", f"{top.disk_gb} GB"),
        )

    functions = _of(planned, "aws_lambda_function")
    _compare(problems, "alert API functions", len(functions), 1)
    for function in functions:
        module, _, attribute = function["handler"].rpartition(".")
        entry = getattr(importlib.import_module(module), attribute, None)
        _compare(problems, "alert API handler is pipeline.api.app.handler", callable(entry), True)
        _compare(
            problems, "alert API runtime", function["runtime"], f"python{EMR_RELEASES[emr.release].python}"
        )
        env = function["environment"][0]["variables"]
        _compare(problems, "alert API table", env.get("COATTAIL_ALERTS_TABLE"), spec.alerts_table.name)
        _compare(problems, "alert API stream", env.get("COATTAIL_STREAM"), spec.streams[0].name)
        alarms = [a for a in _of(planned, "aws_cloudwatch_metric_alarm") if a["namespace"] == "AWS/Lambda"]
        _compare(
            problems,
            "alert API alarm",
            [a["dimensions"] for a in alarms],
            [{"FunctionName": function["function_name"]}],
        )
    routes = {r["route_key"] for r in _of(planned, "aws_apigatewayv2_route")}
    _compare(problems, "alert API routes", routes, {f"GET {r}" for r in ROUTES})
    formats = {i["payload_format_version"] for i in _of(planned, "aws_apigatewayv2_integration")}
    _compare(problems, "alert API payload format", formats, {"2.0"})
    grants = {
        a for d in _of(planned, "data.aws_iam_policy_document") for s in d["statement"] for a in s["actions"]
    }
    needed = {"dynamodb:Query", "dynamodb:GetItem", "dynamodb:DescribeTable", "kinesis:DescribeStreamSummary"}
    _compare(problems, "alert API permissions", needed - grants, set())
    _compare(problems, "alert API may scan", {g for g in grants if g.endswith(":Scan")}, set())
    table_alarms = [
        a for a in _of(planned, "aws_cloudwatch_metric_alarm") if a["namespace"] == "AWS/DynamoDB"
    ]
    _compare(
        problems,
        "table alarm",
        [a["dimensions"] for a in table_alarms],
        [{"TableName": spec.alerts_table.name}],
    )
    return problems
