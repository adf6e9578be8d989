"""Structured answers: the DONE(answer=...) text checked against a schema.

``--output-schema FILE.json`` (a JSON Schema) or, from Python, a pydantic
model class: the prompt tells the model the shape, the loop validates the
answer and, if it does not match, asks once more with the validation error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from deskpilot.agent.records.userfiles import read_user_file
from deskpilot.errors import ConfigError

NOTE = ("When the task is complete, give the answer as JSON in DONE(answer='...'), matching this JSON schema: "
        "{schema}")


class AnswerSchema:
    """What a structured answer must look like, and the check that enforces it."""

    def __init__(self, schema: dict[str, Any], model: type[BaseModel] | None = None, source: str = "schema"):
        self.schema, self.model, self.source = schema, model, source
        if model is None:
            import jsonschema

            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as err:
                raise ConfigError(f"output schema {source} is not a valid JSON schema: {err.message}") from None
            self._validator = jsonschema.validators.validator_for(schema)(schema)

    @classmethod
    def from_file(cls, path: Path | str) -> "AnswerSchema":
        path = Path(path)
        text = read_user_file(path, "output schema")  # a folder or a FIFO (would block forever): one line
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"output schema {path} is not JSON: {err.msg} (line {err.lineno})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"output schema {path} must be a JSON object")
        return cls(data, source=str(path))

    @classmethod
    def from_model(cls, model: type[BaseModel]) -> "AnswerSchema":
        return cls(model.model_json_schema(), model=model, source=model.__name__)

    @classmethod
    def coerce(cls, value: "AnswerSchema | type[BaseModel] | Path | str | dict | None") -> "AnswerSchema | None":
        if value is None or isinstance(value, AnswerSchema):
            return value
        if isinstance(value, type) and issubclass(value, BaseModel):
            return cls.from_model(value)
        if isinstance(value, dict):
            return cls(value)
        return cls.from_file(value)

    def note(self) -> str:
        return NOTE.format(schema=json.dumps(self.schema, ensure_ascii=False, separators=(",", ":")))

    def check(self, answer: str | None) -> Any:
        """The validated value (a model instance for a pydantic schema); ValueError says what is wrong."""
        if answer is None or not answer.strip():
            raise ValueError("DONE has no answer; give the JSON answer as DONE(answer='...')")
        try:
            data = json.loads(answer)
        except json.JSONDecodeError as err:
            raise ValueError(f"the answer is not JSON ({err.msg} at character {err.pos})") from None
        if self.model is not None:
            try:
                return self.model.model_validate(data)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "the answer"
                raise ValueError(f"the answer does not match the schema: {where}: {first['msg']}") from None
        error = next(iter(sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))), None)
        if error is not None:
            where = ".".join(str(p) for p in error.path) or "the answer"
            raise ValueError(f"the answer does not match the schema: {where}: {error.message}")
        return data
