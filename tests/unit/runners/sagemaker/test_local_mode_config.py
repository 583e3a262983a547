"""The SDK local-mode config kubesage hands the SDK: host network and a run label, the user's settings kept."""

from kubesage.runners.sagemaker.local_mode import RUN_LABEL, host_network_config


def test_jobs_join_the_host_network_and_carry_the_runs_label() -> None:
    config = host_network_config(None, "run-1")
    assert config == {"local": {"container_config": {"network_mode": "host", "labels": {RUN_LABEL: "run-1"}}}}


def test_the_users_own_container_settings_and_labels_are_kept() -> None:
    users = {
        "SchemaVersion": "1.0",
        "local": {"local_code": True, "container_config": {"shm_size": "1g", "labels": {"team": "churn"}}},
    }
    config = host_network_config(users, "run-2")
    assert config["SchemaVersion"] == "1.0"
    assert config["local"]["local_code"] is True
    assert config["local"]["container_config"] == {
        "shm_size": "1g",
        "network_mode": "host",
        "labels": {"team": "churn", RUN_LABEL: "run-2"},
    }
    assert users["local"]["container_config"] == {"shm_size": "1g", "labels": {"team": "churn"}}  # not mutated
