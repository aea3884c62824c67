"""template.yaml as data: a CloudFormation-aware YAML loader and a small intrinsic resolver.

The local run builds everything it starts from this module's reading of the template (queues,
tables, secrets, routes, event sources, schedules, each function's environment), so a
resource or variable added to the template shows up locally without touching the local run.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

PSEUDO_PARAMETERS = {
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
}

# Short-form tags and the long form they stand for.
_TAGS = {
    "!Ref": "Ref",
    "!Condition": "Condition",
    "!GetAtt": "Fn::GetAtt",
    "!Sub": "Fn::Sub",
    "!If": "Fn::If",
    "!Not": "Fn::Not",
    "!Equals": "Fn::Equals",
    "!And": "Fn::And",
    "!Or": "Fn::Or",
    "!Join": "Fn::Join",
    "!Select": "Fn::Select",
    "!Split": "Fn::Split",
    "!FindInMap": "Fn::FindInMap",
    "!Base64": "Fn::Base64",
    "!GetAZs": "Fn::GetAZs",
    "!ImportValue": "Fn::ImportValue",
    "!Cidr": "Fn::Cidr",
}


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation's short-form tags into their long form."""


def _construct(long_name: str) -> Callable[[CfnLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if long_name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {long_name: value}

    return construct


for _tag, _long in _TAGS.items():
    CfnLoader.add_constructor(_tag, _construct(_long))


def load(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


_SUB_VARIABLE = re.compile(r"\$\{(?!!)([^}]+)\}")


def sub_variables(text: str) -> list[str]:
    """The `${...}` names a Fn::Sub string uses (`${!Literal}` excluded)."""
    return _SUB_VARIABLE.findall(text)


class TemplateError(Exception):
    pass


_NO_VALUE = object()


@dataclass
class Physical:
    """What a resource resolves to: its Ref value and its GetAtt attributes."""

    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


class Resolver:
    """Resolves intrinsic functions against parameter values and physical resources."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any],
        physical: Mapping[str, Physical],
        pseudo: Mapping[str, str],
    ) -> None:
        self.template = template
        self.parameters = dict(parameters)
        self.physical = physical
        self.pseudo = dict(pseudo)
        self._conditions: dict[str, bool] = {}

    # -- conditions
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            definition = self.template.get("Conditions", {}).get(name)
            if definition is None:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(definition))
        return self._conditions[name]

    # -- values
    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name].ref
        raise TemplateError(f"cannot resolve Ref {name}")

    def get_att(self, name: str, attribute: str) -> str:
        try:
            return self.physical[name].attributes[attribute]
        except KeyError:
            raise TemplateError(f"cannot resolve GetAtt {name}.{attribute}") from None

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.physical:
                return self.get_att(*name.split(".", 1))
            value = self.ref(name)
            if isinstance(value, list):
                raise TemplateError(f"Fn::Sub of list parameter {name}")
            return str(value)

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key == "Fn::GetAtt":
                name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::Sub":
                if isinstance(argument, list):
                    text, variables = argument
                    return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})
                return self._sub(argument, {})
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Not":
                return not self.resolve(argument[0])
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            if key == "Fn::And":
                return all(self.resolve(item) for item in argument)
            if key == "Fn::Or":
                return any(self.resolve(item) for item in argument)
            if key == "Fn::Join":
                delimiter, items = argument
                return delimiter.join(str(item) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                delimiter, text = argument
                return str(self.resolve(text)).split(delimiter)
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local run")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}


# -- the SAM model the local run needs ---------------------------------------------------------


@dataclass
class HttpRoute:
    method: str
    path: str
    function: str
    authorizer: str | None  # "AWS_IAM" or None

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class SqsSource:
    function: str
    queue: str  # logical id of the queue
    batch_size: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None


class UnknownSchedule(KeyError):
    """No schedule of the template targets or is named what was asked for: its own exception,
    so that a KeyError raised inside a fired function is reported as that function's failure."""


@dataclass
class ScheduleSource:
    function: str  # the target: a function, or a state machine (see `state_machine`)
    name: str
    expression: str
    input: str | None = None  # the event's fixed Input, when the template sets one
    state_machine: bool = False


@dataclass
class StateMachineSpec:
    logical_id: str
    function: str  # the one function its definition invokes (via DefinitionSubstitutions)


@dataclass
class FunctionSpec:
    logical_id: str
    handler: str
    timeout: int
    memory: int
    environment: dict[str, Any]  # unresolved (intrinsics inside)
    events: dict[str, Any]


def _merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rule: maps merge (the function wins), everything else is replaced."""
    merged = copy.deepcopy(dict(global_props))
    for key, value in props.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_globals(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class SamApp:
    """The parts of a SAM template that a local run serves."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources", {})

    @classmethod
    def load(cls, path: Path = TEMPLATE_PATH) -> SamApp:
        return cls(load(path))

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            name: resource
            for name, resource in self.resources.items()
            if resource.get("Type") == resource_type
        }

    def parameter_defaults(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in self.template.get("Parameters", {}).items():
            if "Default" in spec:
                values[name] = spec["Default"]
        return values

    def parameters(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Parameter values (defaults, then overrides); list types become lists."""
        declared = self.template.get("Parameters", {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameters: {', '.join(sorted(unknown))}")
        values = {**self.parameter_defaults(), **overrides}
        missing = set(declared) - set(values)
        if missing:
            raise TemplateError(f"parameters without a value: {', '.join(sorted(missing))}")
        for name, spec in declared.items():
            value = values[name]
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                values[name] = [item.strip() for item in value.split(",") if item.strip()]
            elif spec.get("Type") == "Number":
                values[name] = str(value)
            pattern = spec.get("AllowedPattern")
            if pattern and isinstance(values[name], str) and not re.fullmatch(pattern, value):
                raise TemplateError(f"parameter {name} does not match {pattern}")
        return values

    def functions(self) -> dict[str, FunctionSpec]:
        global_props = self.template.get("Globals", {}).get("Function", {})
        specs = {}
        for name, resource in self.of_type("AWS::Serverless::Function").items():
            props = _merge_globals(global_props, resource.get("Properties", {}))
            specs[name] = FunctionSpec(
                logical_id=name,
                handler=props["Handler"],
                timeout=int(props.get("Timeout", 3)),
                memory=int(props.get("MemorySize", 128)),
                environment=props.get("Environment", {}).get("Variables", {}),
                events=props.get("Events", {}),
            )
        return specs

    def http_routes(self) -> list[HttpRoute]:
        routes = []
        for name, spec in self.functions().items():
            for event in spec.events.values():
                if event.get("Type") != "HttpApi":
                    continue
                props = event.get("Properties", {})
                auth = props.get("Auth", {}).get("Authorizer")
                routes.append(HttpRoute(props["Method"].upper(), props["Path"], name, auth))
        return routes

    def sqs_sources(self) -> list[SqsSource]:
        """The queues' event source mappings (`AWS::Lambda::EventSourceMapping`: a function's
        SQS event would have SAM grant receive and delete on every queue of the account)."""
        for name, spec in self.functions().items():
            if any(event.get("Type") == "SQS" for event in spec.events.values()):
                raise TemplateError(f"{name}: declare its queue as an EventSourceMapping")
        sources = []
        for name, resource in self.of_type("AWS::Lambda::EventSourceMapping").items():
            props = resource["Properties"]
            queue, function = props["EventSourceArn"], props["FunctionName"]
            if not (isinstance(queue, dict) and "Fn::GetAtt" in queue):
                raise TemplateError(f"{name}: EventSourceArn must be !GetAtt <Queue>.Arn")
            if not (isinstance(function, dict) and "Ref" in function):
                raise TemplateError(f"{name}: FunctionName must be !Ref <Function>")
            sources.append(
                SqsSource(
                    function=function["Ref"],
                    queue=queue["Fn::GetAtt"][0],
                    batch_size=int(props.get("BatchSize", 10)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in props.get("FunctionResponseTypes", []),
                    maximum_concurrency=props.get("ScalingConfig", {}).get("MaximumConcurrency"),
                )
            )
        return sources

    def schedules(self) -> list[ScheduleSource]:
        found = []
        for name, spec in self.functions().items():
            for event_name, event in spec.events.items():
                if event.get("Type") in ("Schedule", "ScheduleV2"):
                    expression = event["Properties"].get("Schedule") or event["Properties"].get(
                        "ScheduleExpression"
                    )
                    found.append(ScheduleSource(name, event_name, expression))
        for name, resource in self.of_type("AWS::Serverless::StateMachine").items():
            for event_name, event in resource["Properties"].get("Events", {}).items():
                if event.get("Type") in ("Schedule", "ScheduleV2"):
                    props = event["Properties"]
                    expression = props.get("Schedule") or props.get("ScheduleExpression")
                    found.append(
                        ScheduleSource(name, event_name, expression, props.get("Input"), True)
                    )
        return found

    def state_machines(self) -> dict[str, StateMachineSpec]:
        """State machines, each with the function it loops; the local run drives that loop
        itself (local_run.state_machine), it does not interpret the definition."""
        specs = {}
        for name, resource in self.of_type("AWS::Serverless::StateMachine").items():
            substitutions = resource["Properties"].get("DefinitionSubstitutions", {})
            targets = {
                value["Fn::GetAtt"][0]
                for value in substitutions.values()
                if isinstance(value, dict) and "Fn::GetAtt" in value
            }
            if len(targets) != 1:
                raise TemplateError(f"{name}: the local run drives one function per state machine")
            specs[name] = StateMachineSpec(name, targets.pop())
        return specs

    def cors(self) -> dict[str, Any] | None:
        apis = self.of_type("AWS::Serverless::HttpApi")
        if len(apis) != 1:
            raise TemplateError("the local run serves exactly one AWS::Serverless::HttpApi")
        (props,) = (api.get("Properties", {}) for api in apis.values())
        return props.get("CorsConfiguration")
