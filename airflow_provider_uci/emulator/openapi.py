"""The emulator's OpenAPI document, made to say what the routes really take and answer.

The handlers read the raw request (to answer exactly as the real service does), so FastAPI can see
neither their parameters nor their answers, and would promise a 422 that never comes. :func:`install`
replaces each operation's parameters, body, security and answers with the declarations here: the
success shapes, every 4xx with its error body (the service's envelope; Kong's ``{"message"}`` for the
gateway's own refusals; Azure's XML for downloads), and the 429 and 500 the fault knobs inject. The
document describes the default configuration: under ``play_errors`` some bad input gets the real
service's HTML pages and 500s instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from airflow_provider_uci.emulator.inputs import MAX_LIMIT
from airflow_provider_uci.exhaust.names import DATASETS

STRING: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}
SEGMENT: dict[str, Any] = {"type": "string", "pattern": "^[^/]+$"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """An object schema; every property is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **extra,
    }


def envelope(params: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return obj(
        {
            "id": STRING,
            "ver": STRING,
            "ts": STRING,
            "params": params,
            "responseCode": STRING,
            "result": result,
        }
    )


JOB_STATS = obj(
    {
        "dtJobSubmitted": INTEGER,
        "dtJobCompleted": {"type": ["integer", "null"]},
        "executionTime": {"type": ["integer", "null"]},
    }
)
JOB_FIELDS: dict[str, Any] = {
    "requestId": STRING,
    "tag": STRING,
    "dataset": STRING,
    "requestedBy": STRING,
    "requestedChannel": STRING,
    "status": {"enum": ["SUBMITTED", "PROCESSING", "SUCCESS", "FAILED"]},
    "lastUpdated": INTEGER,
    "datasetConfig": {},
    "attempts": INTEGER,
    "jobStats": JOB_STATS,
    "downloadUrls": {"type": "array", "items": STRING},
    "expiresAt": INTEGER,
}
SUCCESS_PARAMS = obj({"resmsgid": STRING, "status": {"const": "successful"}, "client_key": {"type": "null"}})
ERROR_PARAMS = obj(
    {
        "resmsgid": STRING,
        "err": STRING,
        "status": {"const": "failed"},
        "errmsg": STRING,
        "client_key": {"type": "null"},
    }
)

SCHEMAS: dict[str, Any] = {
    # submit and read write the job as a map: statusMessage left out while it is null
    "Job": obj({**JOB_FIELDS, "statusMessage": STRING}, required=list(JOB_FIELDS)),
    # list and search write it as a case class: every field, statusMessage null while unset
    "ListedJob": obj({**JOB_FIELDS, "statusMessage": {"type": ["string", "null"]}}),
    "JobEnvelope": envelope(SUCCESS_PARAMS, ref("Job")),
    "ListEnvelope": envelope(
        SUCCESS_PARAMS, obj({"count": INTEGER, "jobs": {"type": "array", "items": ref("ListedJob")}})
    ),
    "ErrorEnvelope": envelope(ERROR_PARAMS, {"type": "null"}),
    "GatewayMessage": obj({"message": STRING}),
    "SubmitBody": obj(
        {
            "id": STRING,
            "ver": STRING,
            "ts": STRING,
            "params": {"type": "object"},
            "request": obj(
                {
                    "tag": STRING,
                    "dataset": {"type": "string", "maxLength": 50},
                    "requestedBy": {"type": "string", "maxLength": 50},
                    "encryptionKey": {"type": "string", "maxLength": 50},
                    "datasetConfig": obj(
                        {"type": STRING, "conversationId": STRING, "startDate": STRING, "endDate": STRING},
                        required=[],
                    ),
                },
                required=["tag", "dataset", "datasetConfig"],
            ),
        },
        required=["request"],
    ),
    "SearchBody": obj(
        {
            "request": obj(
                {
                    "filters": obj(
                        {
                            "dataset": STRING,
                            "status": STRING,
                            "channel": STRING,
                            "requestedDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                        },
                        required=[],
                        minProperties=1,
                    ),
                    "limit": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT},
                },
                required=["filters"],
            )
        }
    ),
    "Clock": obj({"now": STRING, "offsetSeconds": {"type": "number"}, "timezone": STRING}),
    "ClockBody": {
        "oneOf": [
            obj({"now": {"type": "string", "format": "date-time"}}),
            obj({"reset": {"type": "boolean"}}),
        ]
    },
    "Health": obj({"status": STRING, "storage": STRING, "store": STRING, "now": STRING}),
    "LastRequest": obj(
        {
            "method": {"type": ["string", "null"]},
            "path": {"type": ["string", "null"]},
            "headerNames": {"type": "array", "items": STRING},
        }
    ),
    "Schedule": obj(
        {
            "enabled": {"type": "boolean"},
            "every": {"type": ["number", "null"]},
            "timezone": STRING,
            "crons": {"type": "object", "additionalProperties": STRING},
            "runs": INTEGER,
            "nextDue": {"type": "object", "additionalProperties": STRING},
        }
    ),
    "Outcomes": obj(
        {
            "processed": {
                "type": "array",
                "items": obj(
                    {
                        "requestId": STRING,
                        "tag": STRING,
                        "dataset": STRING,
                        "status": STRING,
                        "statusMessage": STRING,
                        "downloadUrls": {"type": "array", "items": STRING},
                        "executionTime": INTEGER,
                    }
                ),
            }
        }
    ),
    "FailBody": obj({"message": STRING}, required=[]),
}

SECURITY_SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key the gateway knows (default dev-key), as Kong's JWT plugin takes it.",
    },
    "adminToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Admin-Token",
        "description": "The emulator's admin token, when one is configured; without one, the admin "
        "routes and the internal search answer loopback clients only.",
    },
    "adminBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The same admin token as Authorization: Bearer <token>.",
    },
}


def json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    return json_answer(description, ref("ErrorEnvelope"))


def gateway(description: str) -> dict[str, Any]:
    return json_answer(description, ref("GatewayMessage"))


def xml(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/xml": {"schema": STRING}}}


def header(name: str, description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "schema": STRING, "description": description}


def query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def path(name: str, description: str) -> dict[str, Any]:
    """A path parameter: one segment, so neither empty nor holding '/' (such a path is no route's: 404)."""
    return {"name": name, "in": "path", "required": True, "schema": SEGMENT, "description": description}


def json_body(schema: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": ref(schema)}}}


GATEWAY_ANSWERS = {
    "401": gateway("no API key, or one the gateway does not know"),
    "403": error("the consumer may not use this channel, or X-Channel-ID is missing"),
    "429": gateway("rate limited (a fault knob), with Retry-After"),
    "500": error("a database error, or an injected fault"),
}
NO_ROUTE = gateway("no route: a tag that is empty or holds '/'")
ADMIN_ANSWERS = {
    "401": error("X-Admin-Token missing while an admin token is configured"),
    "403": error("a wrong X-Admin-Token, or a client beyond loopback while no admin token is configured"),
}
CHANNEL = header("X-Channel-ID", "the channel (the bots' owner org id)", required=True)
LIMIT = {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT}
ADMIN = [{"adminToken": []}, {"adminBearer": []}]
JOB_PARAMS = [
    path("request_id", "the job's requestId"),
    query("tag", STRING, "the job's tag with its channel (tag:channel)", required=True),
]

BLOB_PARAMS = [
    path("account", "the storage account"),
    path("container", "the container"),
    path("key", "the blob's key"),
    query("se", STRING, "the signed expiry"),
    query("sig", STRING, "the signature"),
    header("Range", "bytes=first-last"),
]
BLOB_REFUSALS = {
    "403": xml("AuthenticationFailed: no, a wrong or an expired signature"),
    "404": xml("ResourceNotFound or BlobNotFound"),
    "416": xml("InvalidRange"),
    "429": gateway("rate limited (a fault knob)"),
    "500": xml("an injected fault"),
}


def binary(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }


OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/dataset/v1/request/submit"): {
        "security": [{"apiKey": []}],
        "parameters": [CHANNEL],
        "requestBody": json_body("SubmitBody"),
        "responses": {
            "200": json_answer("the job (new, or the same day's existing one)", ref("JobEnvelope")),
            "400": error("a missing field, a value too long for its column, or a body that is not JSON"),
            **GATEWAY_ANSWERS,
            "413": gateway("a body over 1 MB (Kong's request-size limit)"),
            "415": error("a body that is not declared as JSON"),
        },
    },
    ("get", "/dataset/v1/request/read/{tag}"): {
        "security": [{"apiKey": []}],
        "parameters": [
            path("tag", "the bare tag, without :channel"),
            CHANNEL,
            query("requestId", STRING, "the job's requestId"),
        ],
        "responses": {
            "200": json_answer(
                "the job, or (still HTTP 200) the failed envelope of no such job",
                {"anyOf": [ref("JobEnvelope"), ref("ErrorEnvelope")]},
            ),
            **GATEWAY_ANSWERS,
            "404": NO_ROUTE,
        },
    },
    ("get", "/dataset/v1/request/list/{tag}"): {
        "security": [{"apiKey": []}],
        "parameters": [
            path("tag", "the bare tag, without :channel"),
            CHANNEL,
            query("limit", LIMIT, "how many jobs at most (default 100)"),
        ],
        "responses": {
            "200": json_answer("the tag's jobs, newest first", ref("ListEnvelope")),
            "400": error("a limit that is not a whole number from 0 to 2147483647"),
            **GATEWAY_ANSWERS,
            "404": NO_ROUTE,
        },
    },
    ("post", "/request/search"): {
        "security": ADMIN,
        "requestBody": json_body("SearchBody"),
        "responses": {
            "200": json_answer("the count of matching jobs and the newest of them", ref("ListEnvelope")),
            "400": error(
                "no supported filter, a malformed requestedDate or limit, or a body that is not JSON"
            ),
            **ADMIN_ANSWERS,
            "413": error("a body over 1 MB"),
            "415": error("a body not declared as JSON"),
            "429": gateway("rate limited (a fault knob)"),
            "500": error("a database error, or a fault"),
        },
    },
    ("get", "/blob/{account}/{container}/{key}"): {
        "parameters": BLOB_PARAMS,
        "responses": {"200": binary("the blob"), "206": binary("the range asked for"), **BLOB_REFUSALS},
    },
    ("head", "/blob/{account}/{container}/{key}"): {
        "parameters": BLOB_PARAMS,
        "responses": {
            "200": {"description": "the blob's size"},
            "206": {"description": "the range's size"},
            **{status: {"description": answer["description"]} for status, answer in BLOB_REFUSALS.items()},
        },
    },
    ("post", "/admin/run-jobs"): {
        "security": ADMIN,
        "parameters": [
            query(
                "dataset",
                {"enum": list(DATASETS)},
                "run only this dataset's job",
            )
        ],
        "responses": {
            "200": json_answer("what each processed request came to", ref("Outcomes")),
            "400": error("an unknown dataset"),
            **ADMIN_ANSWERS,
        },
    },
    ("get", "/admin/schedule"): {
        "security": ADMIN,
        "responses": {"200": json_answer("the nightly schedule", ref("Schedule")), **ADMIN_ANSWERS},
    },
    ("get", "/admin/health"): {
        "security": ADMIN,
        "responses": {"200": json_answer("the emulator is up", ref("Health")), **ADMIN_ANSWERS},
    },
    ("get", "/admin/served"): {
        "security": ADMIN,
        "responses": {
            "200": json_answer(
                "the faults served so far, by kind and route, and the submissions accepted, by job",
                {"type": "object"},
            ),
            **ADMIN_ANSWERS,
        },
    },
    ("get", "/admin/last-request"): {
        "security": ADMIN,
        "responses": {
            "200": json_answer(
                "the last API call's method, path and header names (lower case, no values)",
                ref("LastRequest"),
            ),
            **ADMIN_ANSWERS,
        },
    },
    ("get", "/admin/clock"): {
        "security": ADMIN,
        "responses": {"200": json_answer("the emulator's clock", ref("Clock")), **ADMIN_ANSWERS},
    },
    ("post", "/admin/clock"): {
        "security": ADMIN,
        "requestBody": json_body("ClockBody"),
        "responses": {
            "200": json_answer("the clock, moved", ref("Clock")),
            "400": error(
                "a body that is not a JSON object, or a now that is no date-time with an "
                "offset from 1970 to 2999"
            ),
            **ADMIN_ANSWERS,
            "413": error("a body over 64 KiB"),
        },
    },
    ("post", "/admin/jobs/{request_id}/file"): {
        "security": ADMIN,
        "parameters": [
            *JOB_PARAMS,
            query("name", STRING, "the file's name (default: the real job's)"),
            query("executionTime", LIMIT, "the executionTime to report, in ms"),
        ],
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        "responses": {
            "200": json_answer("the job, SUCCESS, with its stored URL", ref("ListedJob")),
            "400": error(
                "no tag, a malformed executionTime, a name that is not one file name, or a "
                "job whose dataset names no folder"
            ),
            "404": error("no such job (or no route: a requestId that is empty or holds '/')"),
            **ADMIN_ANSWERS,
        },
    },
    ("post", "/admin/jobs/{request_id}/fail"): {
        "security": ADMIN,
        "parameters": JOB_PARAMS,
        "requestBody": json_body("FailBody", required=False),
        "responses": {
            "200": json_answer("the job, FAILED", ref("ListedJob")),
            "400": error("no tag, or a body that is not a JSON object with a string message"),
            "404": error("no such job (or no route: a requestId that is empty or holds '/')"),
            **ADMIN_ANSWERS,
            "413": error("a body over 64 KiB"),
        },
    },
}


def install(app: FastAPI) -> None:
    """Serve the declared document at ``/openapi.json`` (built once, on first request)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for route_path, methods in schema["paths"].items():
                for method, operation in methods.items():
                    declared = OPERATIONS.get((method, route_path))
                    if declared is None:
                        raise RuntimeError(f"{method.upper()} {route_path}: no OpenAPI declaration")
                    operation.pop("parameters", None)
                    operation.pop("requestBody", None)
                    operation.update(declared)
            components = schema.setdefault("components", {})
            components["schemas"] = dict(SCHEMAS)
            components["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
