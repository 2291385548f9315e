"""Settings that only make sense together are refused apart, at start-up."""

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from gateway.settings import Settings


def test_a_shared_queue_over_per_gateway_sqlite_job_records_is_refused() -> None:
    with pytest.raises(ValidationError, match="FACET_JOB_STORE=postgres"):
        Settings(redis_url=SecretStr("redis://127.0.0.1:6379/0"))


def test_a_shared_queue_with_the_shared_job_store_is_accepted() -> None:
    settings = Settings(
        redis_url=SecretStr("redis://127.0.0.1:6379/0"),
        job_store="postgres",
        postgres_url=SecretStr("postgresql://u:p@127.0.0.1/facet"),
        shared_dir=Path("/shared"),
    )
    assert settings.redis_url.get_secret_value().startswith("redis://")


def test_several_tritons_replace_the_single_url_and_files_move_to_the_shared_dir() -> None:
    settings = Settings(triton_grpc_urls=["a:8001", "b:8001"], shared_dir=Path("/shared"))
    assert settings.triton_urls == ["a:8001", "b:8001"]
    assert str(settings.results_dir) == "/shared/results"
    assert Settings().triton_urls == [Settings().triton_grpc_url]


def test_a_shared_job_store_without_a_shared_files_folder_is_refused() -> None:
    with pytest.raises(ValidationError, match="FACET_SHARED_DIR"):
        Settings(job_store="postgres", postgres_url=SecretStr("postgresql://u:p@h/facet"))
