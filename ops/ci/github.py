"""The few GitHub REST API reads ``ops ci check`` needs: environments, their deployment branch
policies and variables, the repository's variables. Token from ``GITHUB_TOKEN`` or ``GH_TOKEN``
(read access to the repository's administration settings is enough: fine-grained "Environments:
read" and "Variables: read"); API root from ``GITHUB_API_URL`` (what Actions sets; default
https://api.github.com)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ops.runner import CommandError, UsageError

DEFAULT_API = "https://api.github.com"
MAX_PAGES = 50  # bounded: 50 pages of 30 variables is far beyond any repository here


@dataclass(frozen=True)
class LiveEnvironment:
    name: str
    reviewers: int  # required reviewers (0: none)
    branch_rule: str  # "none", "protected", "custom"
    branches: tuple[str, ...]  # custom policies' branch patterns
    tag_patterns: tuple[str, ...]
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveRepository:
    repository: str
    environments: Mapping[str, LiveEnvironment]
    variables: Mapping[str, str]


class GitHub:
    def __init__(self, api: str, token: str, timeout: float = 30) -> None:
        self.api = api.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> GitHub:
        token = environ.get("GITHUB_TOKEN") or environ.get("GH_TOKEN")
        if not token:
            raise UsageError(
                "no GitHub token: set GITHUB_TOKEN (or GH_TOKEN) to a token that may read the "
                "repository's environments and variables"
            )
        return cls(environ.get("GITHUB_API_URL") or DEFAULT_API, token)

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        url = f"{self.api}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(
            url,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "mlops-infra-ops-ci-check",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read().decode())
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise CommandError(
                    f"GitHub refused {path} ({exc.code}): the token cannot read it (it needs read "
                    "access to the repository's environments and variables)"
                ) from None
            if exc.code == 404:
                raise NotFoundError(path) from None
            raise CommandError(f"GitHub answered {exc.code} to {path}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise CommandError(f"cannot reach the GitHub API at {self.api}: {exc}") from None

    def paged(self, path: str, key: str, per_page: int) -> list[Any]:
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            data = self.get(path, {"per_page": per_page, "page": page})
            batch = data.get(key, [])
            items += batch
            if len(batch) < per_page or len(items) >= int(data.get("total_count", len(items))):
                return items
        raise CommandError(f"{path}: more than {MAX_PAGES} pages")

    def read(self, repository: str) -> LiveRepository:
        base = f"/repos/{repository}"
        try:
            raw_envs = self.paged(f"{base}/environments", "environments", 100)
        except NotFoundError:
            raise CommandError(f"repository {repository} not found (or the token cannot see it)") from None
        environments = {}
        for raw in raw_envs:
            name = raw["name"]
            quoted = urllib.parse.quote(name, safe="")
            reviewers = sum(
                len(rule.get("reviewers", []))
                for rule in raw.get("protection_rules", [])
                if rule.get("type") == "required_reviewers"
            )
            policy = raw.get("deployment_branch_policy")
            branches: tuple[str, ...] = ()
            tags: tuple[str, ...] = ()
            if policy is None:
                rule = "none"
            elif policy.get("protected_branches"):
                rule = "protected"
            else:
                rule = "custom"
                found = self.paged(
                    f"{base}/environments/{quoted}/deployment-branch-policies", "branch_policies", 100
                )
                branches = tuple(sorted(p["name"] for p in found if p.get("type", "branch") == "branch"))
                tags = tuple(sorted(p["name"] for p in found if p.get("type") == "tag"))
            variables = {
                v["name"]: v["value"]
                for v in self.paged(f"{base}/environments/{quoted}/variables", "variables", 30)
            }
            environments[name] = LiveEnvironment(name, reviewers, rule, branches, tags, variables)
        repo_variables = {
            v["name"]: v["value"] for v in self.paged(f"{base}/actions/variables", "variables", 30)
        }
        return LiveRepository(repository, environments, repo_variables)


class NotFoundError(Exception):
    pass
