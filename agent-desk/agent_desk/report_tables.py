"""Report rows as tables of text (the page, CSV and XLSX show the same cells) and chart series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_desk.call_report import CallRow
from agent_desk.hot_topics import Topic
from agent_desk.ticket_report import TicketRow
from tickets import labels
from tickets.models import Channel


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    total: list[str] | None = None
    # Chart.js data: labels and named series (the page draws them; exports ignore them).
    chart: dict[str, Any] = field(default_factory=dict)

    def all_rows(self) -> list[list[str]]:
        return self.rows + ([self.total] if self.total else [])


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


CALL_HEADER = [
    "分组", "呼入人工", "接通", "15秒内接通", "15秒接通率", "接通率", "放弃", "短时放弃",
    "平均应答(秒)", "平均处理(秒)", "占用率",
]  # fmt: skip


def call_cells(row: CallRow) -> list[str]:
    return [
        row.label,
        str(row.offered),
        str(row.answered),
        str(row.within_target),
        pct(row.service_level),
        pct(row.connection_rate),
        str(row.abandoned),
        str(row.short_abandoned),
        secs(row.asa_s),
        secs(row.aht_s),
        pct(row.occupancy),
    ]


def call_table(rows: Sequence[CallRow], total: CallRow, first: str) -> Table:
    return Table(
        header=[first, *CALL_HEADER[1:]],
        rows=[call_cells(r) for r in rows],
        total=call_cells(total),
        chart={
            "labels": [r.label for r in rows],
            "bars": {
                "接通": [r.answered for r in rows],
                "放弃": [r.abandoned for r in rows],
            },
            "line": {"15秒接通率": [_percent(r.service_level) for r in rows]},
        },
    )


def ticket_cells(row: TicketRow) -> list[str]:
    return [
        row.label,
        str(row.created),
        *(str(row.by_channel[c.value]) for c in Channel),
        str(row.resolved_directly),
        pct(row.direct_rate),
        str(row.replies_due),
        pct(row.on_time_rate),
        str(row.rated),
        pct(row.satisfaction_rate),
    ]


def ticket_table(rows: Sequence[TicketRow], total: TicketRow, first: str) -> Table:
    header = [
        first, "受理量", *(labels.CHANNEL[c] for c in Channel), "直接办结", "直接办结率", "应办结",
        "按时办结率", "评价数", "满意率",
    ]  # fmt: skip
    return Table(
        header=header,
        rows=[ticket_cells(r) for r in rows],
        total=ticket_cells(total),
        chart={
            "labels": [r.label for r in rows],
            "bars": {"受理量": [r.created for r in rows]},
            "line": {
                "按时办结率": [_percent(r.on_time_rate) for r in rows],
                "满意率": [_percent(r.satisfaction_rate) for r in rows],
            },
        },
    )


def topic_table(topics: Sequence[Topic]) -> Table:
    return Table(
        header=["排名", "热点词", "涉及工单数", "上期", "增减"],
        rows=[
            [str(n), t.term, str(t.tickets), str(t.before), f"{t.tickets - t.before:+d}"]
            for n, t in enumerate(topics, start=1)
        ],
        chart={
            "labels": [t.term for t in topics],
            "bars": {"涉及工单数": [t.tickets for t in topics], "上期": [t.before for t in topics]},
        },
    )


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)
