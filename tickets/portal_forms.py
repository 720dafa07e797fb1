"""The public portal's forms and their choices (categories from the catalog, districts)."""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import BooleanField, FileField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from tickets import catalog, labels, matching
from tickets.models import Category, Department, DepartmentKind, RequestKind
from tickets.revisit import LABELS as SATISFACTION_LABELS
from tickets.revisit import LEVELS

# Mobile 13800001234, or a landline with its area code 0858-8221234 (六盘水 is 0858).
PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
PHOTO_TYPES = {".jpg": "JPG", ".jpeg": "JPG", ".png": "PNG"}
PHOTO_MAX_BYTES = 5 * 1024 * 1024


def normal_phone(text: str) -> str:
    """Digits and the one dash of a landline; spaces and +86 dropped."""
    text = re.sub(r"\s", "", text or "")
    return text.removeprefix("+86").removeprefix("0086")


def _phone(_form: Any, field: Any) -> None:
    if not PHONE.match(normal_phone(field.data or "")):
        raise ValidationError("请填写正确的手机号码或带区号的固定电话")


class OneOf:
    """The value must be one of `field.options` (set per request): select and radio fields without
    WTForms' choice types, whose tuple form is being retired. `options` is [(group, [(value, label)])]."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, _form: Any, field: Any) -> None:
        allowed = {value for _group, options in field.options for value, _label in options}
        if (field.data or "") not in allowed:
            raise ValidationError(self.message)


def _options(pairs: list[tuple[str, str]]) -> list[tuple[str, list[tuple[str, str]]]]:
    return [("", pairs)]


KINDS = _options([(kind.value, name) for kind, name in labels.KIND.items()])
LEVEL_OPTIONS = _options([(level.value, SATISFACTION_LABELS[level]) for level in LEVELS])


class SubmitForm(FlaskForm):  # type: ignore[misc]
    category = StringField("问题类别", validators=[OneOf("请选择问题类别")])
    request_kind = StringField(
        "诉求类型", validators=[OneOf("请选择诉求类型")], default=RequestKind.HELP.value
    )
    district = StringField("所在区县", validators=[OneOf("请选择区县")])
    address = StringField("详细地址", validators=[Length(max=200, message="地址不超过 200 字")])
    content = TextAreaField(
        "诉求内容",
        validators=[
            DataRequired(message="请填写诉求内容"),
            Length(min=10, max=2000, message="诉求内容请写 10 至 2000 字，说清时间、地点和事情经过"),
        ],
    )
    photo = FileField("现场照片（选填）")
    phone = StringField("联系电话", validators=[DataRequired(message="请填写联系电话"), _phone])
    name = StringField("姓名（选填）", validators=[Optional(), Length(max=32, message="姓名不超过 32 字")])
    confidential = BooleanField("保密：不向承办单位提供我的姓名和电话")
    stamp = HiddenField()
    website = StringField("网址（请勿填写）")  # the honeypot


class LookupForm(FlaskForm):  # type: ignore[misc]
    class Meta:
        # The app's CSRFProtect checks every POST already; a second check (and a fresh token made
        # for every look-up) was a tenth of the look-up's cost. The page renders the token itself.
        csrf = False

    number = StringField(
        "工单号",
        validators=[
            DataRequired(message="请填写工单号"),
            Regexp(r"^\s*\d{8}-\d{4,}\s*$", message="工单号形如 20261127-0042"),
        ],
    )
    phone = StringField("提交时的联系电话", validators=[DataRequired(message="请填写联系电话")])


class RatingForm(FlaskForm):  # type: ignore[misc]
    level = StringField("您对办理结果是否满意", validators=[OneOf("请选择满意程度")])
    comment = TextAreaField("意见建议（选填）", validators=[Length(max=500, message="不超过 500 字")])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.level.options = LEVEL_OPTIONS


def fill_choices(form: SubmitForm, session: Session) -> None:
    """Leaf categories grouped under their first two levels; the active districts; the kinds."""
    names = {c.code: c.name for c in session.scalars(select(Category))}
    groups: dict[str, list[tuple[str, str]]] = {}
    for leaf in catalog.leaves(session):
        _leaf, middle, top = matching.ancestors(leaf.code)
        group = f"{names.get(top, '')} / {names.get(middle, '')}"
        groups.setdefault(group, []).append((leaf.code, leaf.name))
    form.category.options = list(groups.items())
    districts = session.scalars(
        select(Department.name)
        .where(Department.kind == DepartmentKind.DISTRICT, Department.active)
        .order_by(Department.id)
    )
    form.district.options = _options([("", "不确定 / 市级")] + [(name, name) for name in districts])
    form.request_kind.options = KINDS
