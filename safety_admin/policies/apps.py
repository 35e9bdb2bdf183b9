from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "safety_admin.policies"
    label = "policies"
    verbose_name = "Policies"

    def ready(self) -> None:
        # The code fingerprint of shared compiled states is taken when ``sharing`` is imported, from the files on
        # disk: import it (and the detectors with it) at startup, so it describes the code this process runs
        # even if a deploy replaces the files before the process first needs a policy.
        from safety_admin.policies import sharing  # noqa: F401
