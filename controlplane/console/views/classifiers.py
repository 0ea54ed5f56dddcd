"""Models: the classifiers' versions with their hold-out scores against baselines; operators activate one."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect

from controlplane.console import figures
from controlplane.console.permissions import Action
from controlplane.console.views.base import ConsoleAction, ConsolePage, paginate
from controlplane.traffic.models import ClassifierKind
from controlplane.traffic.selectors import classifier_list
from controlplane.traffic.training import classifier_activate

VERSIONS_PER_PAGE = 20


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class ClassifiersView(ConsolePage):
    template_name = "console/classifiers.html"
    nav = "models"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        admission = paginate(self.request, classifier_list().filter(kind=ClassifierKind.ADMISSION), VERSIONS_PER_PAGE)
        workload = classifier_list().filter(kind=ClassifierKind.WORKLOAD)[:VERSIONS_PER_PAGE]
        shown = list(reversed(admission.object_list))
        trained = list(reversed(list(workload)))
        context.update(admission=admission, workload=workload, figures={
            "chart-admission": figures.classifier_scores(
                [row.version for row in shown], [_number(row.metrics.get("macro_f1")) for row in shown],
                [_number(row.metrics.get("baseline_macro_f1")) for row in shown],
                title="Admission classifier: macro-F1 against the best baseline", metric="macro-F1"),
            "chart-workload": figures.classifier_scores(
                [row.version for row in trained],
                [_number((row.metrics.get("model") or {}).get("share_mae")) for row in trained],
                [_number((row.metrics.get("persistence") or {}).get("share_mae")) for row in trained],
                title="Workload forecaster: prefill-share error against persistence (lower is better)",
                metric="MAE"),
        })
        return context


class ClassifierActivateView(ConsoleAction):
    action = Action.ACTIVATE_CLASSIFIER

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        classifier = get_object_or_404(classifier_list(), pk=pk)
        classifier_activate(actor=self.actor(), classifier=classifier, reason="operator (console)")
        return redirect("console:models")
