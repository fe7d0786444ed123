"""Upcasters of the CMS events: payloads recorded before the catalogue spoke the CMS's own schema
(issue 12) load as today's shapes. The log keeps the old bytes; these run on every read.

v1 → v2 of ``SectionDefinitionCreated`` / ``SectionDefinitionUpdated``: the definition's ``fields`` (a
list of field specs, Chronicle's own format) is its schema, so it becomes ``schema`` unchanged (JSON
text of the list in ``section_definitions.schema``). ``site_id``, required in v1, stays as it was.
Every other CMS event of v1 still loads as it is: the fields added since (``status``,
``environment_id``, ``published_at``, JSON ``content``) are optional, with the v1 meaning as default.
"""

from __future__ import annotations

from pipeline.upcasting import Payload, upcaster


def _fields_to_schema(data: Payload) -> Payload:
    out = {k: v for k, v in data.items() if k != "fields"}
    if "fields" in data:
        out["schema"] = data["fields"]
    return out


@upcaster("SectionDefinitionCreated", from_version=1)
def section_definition_created_v1_to_v2(data: Payload) -> Payload:
    out = _fields_to_schema(data)
    out.setdefault("schema", [])
    out.setdefault("default_content", None)
    return out


@upcaster("SectionDefinitionUpdated", from_version=1)
def section_definition_updated_v1_to_v2(data: Payload) -> Payload:
    return _fields_to_schema(data)  # partial: a field not sent stays not sent
