"""Schemathesis against the app's own OpenAPI spec: valid and invalid requests for every documented
operation; no 5xx, invalid data refused with a 4xx, every answer matching its documented status, content
type and schema.

Schemathesis' Python API drives Hypothesis directly (its pytest plugin is not needed).
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from reliability_helpers import fuzz_settings


@pytest.fixture(scope="module")
def cases(fuzz_app: FastAPI) -> st.SearchStrategy[schemathesis.Case]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    return schema.as_strategy(GenerationMode.POSITIVE) | schema.as_strategy(GenerationMode.NEGATIVE)


def call_and_check(case: schemathesis.Case) -> None:
    # positive_data_acceptance is left out: a schema-valid 'image' string is almost never an image file, and
    # refusing it with a 4xx is the documented behaviour
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


@fuzz_settings(60)
@given(data=st.data())
def test_openapi_conformance(cases: st.SearchStrategy[schemathesis.Case], data: st.DataObject) -> None:
    call_and_check(data.draw(cases))


@pytest.mark.slow
@fuzz_settings(1500)
@given(data=st.data())
def test_openapi_conformance_long(cases: st.SearchStrategy[schemathesis.Case], data: st.DataObject) -> None:
    call_and_check(data.draw(cases))
