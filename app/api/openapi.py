"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

MONEY = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["97.00"]}
TIME = {"type": "string", "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"items": {"type": "array", "items": _ref(name)}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _ok(_ref("Error"), "Invalid input; nothing changed"),
    "401": _ok(_ref("Error"), "Missing or unknown token"),
    "403": _ok(_ref("Error"), "The token's role may not do this"),
    "404": _ok(_ref("Error"), "Not found"),
}
PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
]

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "meterdesk API",
        "version": "1",
        "description": (
            "Integration API for property-management and finance systems. Authenticate with "
            "`Authorization: Bearer <token>` (create one with `meterdesk token create`). Amounts "
            "are decimal strings in yuan. Times are ISO 8601: answers give the property's local "
            "time with its offset (2027-01-01T00:30:00+08:00); a time sent with an offset (or Z) "
            "is that instant, one sent without an offset is the property's local time. A 4xx "
            "response changes nothing."
        ),
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": {
        "/tenants": {
            "get": {
                "summary": "List tenants",
                "parameters": PAGING,
                "responses": {"200": _ok(_list("Tenant")), **ERRORS},
            }
        },
        "/accounts": {
            "get": {
                "summary": "List accounts with balance and status",
                "parameters": PAGING
                + [
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                    {"name": "number", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _ok(_list("Account")), **ERRORS},
            }
        },
        "/accounts/{account_id}": {
            "get": {
                "summary": "One account",
                "parameters": [
                    {
                        "name": "account_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {"200": _ok(_ref("Account")), **ERRORS},
            }
        },
        "/accounts/{account_id}/entries": {
            "get": {
                "summary": "Ledger entries touching the account's wallet, newest first",
                "parameters": [
                    {
                        "name": "account_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ]
                + PAGING,
                "responses": {"200": _ok(_list("WalletEntry")), **ERRORS},
            }
        },
        "/meters": {
            "get": {
                "summary": "List meters",
                "parameters": PAGING,
                "responses": {"200": _ok(_list("Meter")), **ERRORS},
            }
        },
        "/tariffs": {
            "get": {
                "summary": "Tariffs with their versions",
                "responses": {"200": _ok(_list("Tariff")), **ERRORS},
            }
        },
        "/sales": {
            "post": {
                "summary": "Sell electricity/water (top up an account)",
                "description": "Idempotent: a repeat with the same Idempotency-Key returns the first sale "
                "with status 200 and moves no money.",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 100},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SaleRequest")}},
                },
                "responses": {
                    "201": _ok(_ref("Sale"), "Created"),
                    "200": _ok(_ref("Sale"), "Repeat of an earlier request"),
                    "409": _ok(_ref("Error"), "Key reused for a different sale"),
                    **ERRORS,
                },
            }
        },
        "/sales/{sale_id}": {
            "get": {
                "summary": "One sale",
                "parameters": [
                    {
                        "name": "sale_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {"200": _ok(_ref("Sale")), **ERRORS},
            }
        },
        "/sales/{sale_id}/reversal": {
            "post": {
                "summary": "Reverse a sale (manager/admin tokens), with a reason",
                "parameters": [
                    {
                        "name": "sale_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["reason"],
                                "properties": {"reason": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {
                    "201": _ok(_ref("Sale"), "Reversed"),
                    "200": _ok(_ref("Sale"), "Already reversed"),
                    **ERRORS,
                },
            }
        },
        "/readings": {
            "post": {
                "summary": "Submit a batch of meter readings",
                "description": "Idempotent per meter and timestamp. An invalid reading refuses the whole batch.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["readings"],
                                "properties": {
                                    "readings": {
                                        "type": "array",
                                        "items": _ref("ReadingIn"),
                                        "maxItems": 20000,
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "results": {"type": "array", "items": _ref("ReadingResult")}
                            },
                        }
                    ),
                    **ERRORS,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "message": {"type": "string"},
                            "field": {"type": ["string", "null"]},
                        },
                    }
                },
            },
            "Tenant": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "property_id": {"type": "integer"},
                    "name": {"type": "string"},
                    "phones": {"type": "array", "items": {"type": "string"}},
                    "contact": {"type": "string"},
                },
            },
            "Account": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "number": {"type": "string"},
                    "tenant_id": {"type": "integer"},
                    "room_id": {"type": ["integer", "null"]},
                    "status": {
                        "enum": [
                            "not_opened",
                            "awaiting",
                            "opened",
                            "alarm1",
                            "alarm2",
                            "arrears",
                            "closed",
                        ]
                    },
                    "balance": MONEY,
                    "alarm1": MONEY,
                    "alarm2": MONEY,
                    "credit_limit": MONEY,
                    "tariff_electricity_id": {"type": ["integer", "null"]},
                    "tariff_water_id": {"type": ["integer", "null"]},
                    "opened_at": {"type": ["string", "null"]},
                    "closed_at": {"type": ["string", "null"]},
                    "meters": {"type": "array", "items": {"type": "integer"}},
                },
            },
            "WalletEntry": {
                "type": "object",
                "properties": {
                    "entry_id": {"type": "integer"},
                    "kind": {"type": "string"},
                    "created_at": TIME,
                    "actor": {"type": "string"},
                    "memo": {"type": "string"},
                    "amount": {
                        **MONEY,
                        "description": "Change to the wallet balance (credit positive)",
                    },
                },
            },
            "Meter": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "serial": {"type": "string"},
                    "kind": {"enum": ["electricity", "water"]},
                    "protocol": {"type": "string"},
                    "address": {"type": "string"},
                    "account_id": {"type": ["integer", "null"]},
                    "status": {"enum": ["stock", "active", "removed"]},
                    "multiplier": {"type": "integer"},
                    "prepaid_mode": {"enum": ["platform", "meter"]},
                    "relay_desired": {"enum": ["on", "off"]},
                    "keep_power": {"type": "boolean"},
                    "last_read_at": {"type": ["string", "null"]},
                    "last_total": {
                        "type": ["integer", "null"],
                        "description": "Raw register: 0.01 kWh (electricity) or litres (water)",
                    },
                },
            },
            "Tariff": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "utility": {"type": "string"},
                    "kind": {"enum": ["flat", "tou", "tiered"]},
                    "versions": {"type": "array", "items": {"type": "object"}},
                },
            },
            "SaleRequest": {
                "type": "object",
                "required": ["amount", "method"],
                "properties": {
                    "account_id": {"type": "integer"},
                    "account_number": {"type": "string"},
                    "amount": MONEY,
                    "method": {"enum": ["cash", "card", "wechat", "alipay", "transfer"]},
                    "utility": {"enum": ["electricity", "water"]},
                },
            },
            "Sale": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "receipt_no": {"type": "string"},
                    "account_id": {"type": "integer"},
                    "amount": MONEY,
                    "fee": MONEY,
                    "net": MONEY,
                    "balance_after": MONEY,
                    "method": {"type": "string"},
                    "utility": {"type": "string"},
                    "operator": {"type": "string"},
                    "created_at": TIME,
                    "idempotency_key": {"type": "string"},
                    "reversed": {"type": "boolean"},
                    "reversed_at": {"type": ["string", "null"]},
                    "reversed_by": {"type": ["string", "null"]},
                    "reverse_reason": {"type": ["string", "null"]},
                },
            },
            "ReadingIn": {
                "type": "object",
                "required": ["read_at", "total"],
                "properties": {
                    "meter_id": {"type": "integer"},
                    "serial": {"type": "string"},
                    "read_at": TIME,
                    "total": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Cumulative register: 0.01 kWh or litres, before the multiplier",
                    },
                    "t1": {"type": "integer", "minimum": 0},
                    "t2": {"type": "integer", "minimum": 0},
                    "t3": {"type": "integer", "minimum": 0},
                    "t4": {"type": "integer", "minimum": 0},
                },
            },
            "ReadingResult": {
                "type": "object",
                "properties": {
                    "meter_id": {"type": "integer"},
                    "read_at": TIME,
                    "status": {
                        "enum": [
                            "baseline",
                            "accepted",
                            "out_of_order",
                            "tamper",
                            "held",
                            "released",
                            "ignored",
                        ]
                    },
                    "consumption": {"type": "integer"},
                    "charge": MONEY,
                    "duplicate": {"type": "boolean"},
                    "note": {"type": ["string", "null"]},
                },
            },
        },
    },
}


def _site_tree() -> None:
    """Properties, buildings, floors and rooms: list and create (rooms also read and change)."""
    paths, schemas = SPEC["paths"], SPEC["components"]["schemas"]
    text = {"type": "string"}
    whole = {"type": "integer"}
    area = {"type": "string", "pattern": r"^\d+(\.\d{1,2})?$", "examples": ["35.50"]}
    kind = {"enum": ["shop", "office", "dorm", "common"]}
    records = {
        "Property": ({"id": whole, "code": text, "name": text, "timezone": text}, ["code", "name"]),
        "Building": ({"id": whole, "property_id": whole, "name": text}, ["property_id", "name"]),
        "Floor": (
            {"id": whole, "building_id": whole, "name": text, "level": whole},
            ["building_id", "name"],
        ),
        "Room": (
            {"id": whole, "floor_id": whole, "number": text, "area": area, "kind": kind},
            ["floor_id", "number"],
        ),
    }
    for name, (fields, required) in records.items():
        schemas[name] = {"type": "object", "properties": fields}
        create = {k: v for k, v in fields.items() if k != "id"}
        if name == "Property":
            create["service_fee"] = {"type": "string", "examples": ["3.00"]}
        schemas[f"{name}Create"] = {
            "type": "object",
            "properties": create,
            "required": required,
            "additionalProperties": False,
        }
        collection = "/properties" if name == "Property" else f"/{name.lower()}s"
        paths[collection] = {
            "get": {
                "summary": f"List {collection[1:]}",
                "parameters": [] if name == "Property" else PAGING,
                "responses": {"200": _ok(_list(name)), **ERRORS},
            },
            "post": {
                "summary": f"Create a {name.lower()} (answers 201 with its id)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(f"{name}Create")}},
                },
                "responses": {"201": _ok(_ref(name), "Created"), **ERRORS},
            },
        }
    room_id = [{"name": "room_id", "in": "path", "required": True, "schema": whole}]
    paths["/rooms/{room_id}"] = {
        "get": {
            "summary": "One room",
            "parameters": room_id,
            "responses": {"200": _ok(_ref("Room")), **ERRORS},
        },
        "patch": {
            "summary": "Change a room's number, area (m²) or type; audited",
            "parameters": room_id,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"number": text, "area": area, "kind": kind},
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {"200": _ok(_ref("Room")), **ERRORS},
        },
    }


_site_tree()


def _tenants() -> None:
    """Creating and changing tenants."""
    text = {"type": "string"}
    fields = {
        "name": text,
        "phones": {"type": "array", "items": text},
        "contact": text,
        "id_number": text,
        "note": text,
    }
    SPEC["components"]["schemas"]["TenantCreate"] = {
        "type": "object",
        "properties": {"property_id": {"type": "integer"}, **fields},
        "required": ["property_id", "name"],
        "additionalProperties": False,
    }
    body = {"type": "object", "properties": fields, "additionalProperties": False}
    SPEC["paths"]["/tenants"]["post"] = {
        "summary": "Create a tenant (answers 201 with its id)",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("TenantCreate")}},
        },
        "responses": {"201": _ok(_ref("Tenant"), "Created"), **ERRORS},
    }
    SPEC["paths"]["/tenants/{tenant_id}"] = {
        "patch": {
            "summary": "Change a tenant's details; audited",
            "parameters": [
                {"name": "tenant_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body}},
            },
            "responses": {"200": _ok(_ref("Tenant")), **ERRORS},
        }
    }


_tenants()


def _devices() -> None:
    """Gateways (list, create, change) and meters (create, change)."""
    paths, schemas = SPEC["paths"], SPEC["components"]["schemas"]
    text, whole, boolean = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
    gateway = {
        "name": text,
        "host": text,
        "port": whole,
        "baud": whole,
        "parity": {"enum": ["N", "E", "O"]},
        "timeout_ms": whole,
        "transport": {"enum": ["serial", "modbus-tcp"]},
        "enabled": boolean,
    }
    schemas["Gateway"] = {
        "type": "object",
        "properties": {"id": whole, "property_id": whole, **gateway, "online": boolean},
    }
    meter_change = {
        "address": text,
        "gateway_id": {"type": ["integer", "null"]},
        "multiplier": whole,
        "max_rate": whole,
        "power_limit_w": whole,
        "poll_class": text,
    }
    schemas["MeterRecord"] = {
        "type": "object",
        "properties": {
            "id": whole,
            "property_id": whole,
            "kind": {"enum": ["electricity", "water"]},
            "serial": text,
            "protocol": text,
            "room_id": {"type": ["integer", "null"]},
            "status": text,
            **meter_change,
        },
    }

    def body(properties, required=()):
        schema = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = list(required)
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    def path_id(name):
        return [{"name": name, "in": "path", "required": True, "schema": whole}]

    paths["/gateways"] = {
        "get": {
            "summary": "List gateways",
            "parameters": PAGING,
            "responses": {"200": _ok(_list("Gateway")), **ERRORS},
        },
        "post": {
            "summary": "Add a gateway (answers 201 with its id)",
            "requestBody": body(
                {"property_id": whole, "name": text, "host": text, "port": whole, "baud": whole},
                ("property_id", "name", "host", "port"),
            ),
            "responses": {"201": _ok(_ref("Gateway"), "Created"), **ERRORS},
        },
    }
    paths["/gateways/{gateway_id}"] = {
        "patch": {
            "summary": "Change a gateway; audited",
            "parameters": path_id("gateway_id"),
            "requestBody": body(gateway),
            "responses": {"200": _ok(_ref("Gateway")), **ERRORS},
        }
    }
    paths["/meters"]["post"] = {
        "summary": "Register a meter in stock (answers 201 with its id)",
        "requestBody": body(
            {
                "property_id": whole,
                "kind": {"enum": ["electricity", "water"]},
                "serial": text,
                "protocol": text,
                "address": text,
                "gateway_id": whole,
                "multiplier": whole,
            },
            ("property_id", "kind", "serial"),
        ),
        "responses": {"201": _ok(_ref("MeterRecord"), "Created"), **ERRORS},
    }
    paths["/meters/{meter_id}"] = {
        "patch": {
            "summary": "Change a meter; a new multiplier counts from its last accepted reading",
            "parameters": path_id("meter_id"),
            "requestBody": body(meter_change),
            "responses": {"200": _ok(_ref("MeterRecord")), **ERRORS},
        }
    }


_devices()
