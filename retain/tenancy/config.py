"""A tenant's configuration: which events are visits, transactions, channel sends and responses,
and content interactions; the prediction horizon; how long events are kept.

The defaults follow Segment's semantic event specs (e-commerce, email, push, video), so a tenant
whose tracking uses those names needs no configuration at all.
"""

from __future__ import annotations

from typing import Any

import msgspec
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from retain.errors import RetainError
from retain.events import Event


class TenantConfigError(RetainError):
    """A tenant configuration file is invalid; the message names the field."""


class TenantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    horizon_days: int = Field(30, ge=1, le=730, description="Prediction horizon H in days.")
    annual_discount_rate: float = Field(0.10, ge=0.0, le=1.0,
                                        description="Discount rate per year for predicted lifetime value.")
    event_ttl_days: int = Field(400, ge=1, description="How long raw events stay in the per-user event store.")
    visit_types: list[str] = Field(["page", "screen"], description="Message types that count as a visit.")
    visit_events: list[str] = Field(
        ["Application Opened", "Product Viewed", "Products Searched", "Video Playback Started",
         "Video Content Playing", "Order Completed", "Email Link Clicked", "Push Notification Tapped"],
        description="Track events that count as a visit (activity) too.")
    transaction_events: list[str] = Field(["Order Completed"], description="Track events that carry revenue.")
    revenue_properties: list[str] = Field(["revenue", "total", "value"], description="Where a transaction's value is, first found wins.")
    channels: list[str] = Field(["email", "push", "web", "sms"], description="The channels the tenant messages users on.")
    sends: dict[str, str] = Field(
        {"Email Delivered": "email", "Email Sent": "email", "Push Notification Received": "push",
         "Push Notification Sent": "push", "SMS Delivered": "sms"},
        description="Track events that are a message sent on a channel.")
    responses: dict[str, str] = Field(
        {"Email Opened": "email", "Email Link Clicked": "email", "Push Notification Tapped": "push",
         "SMS Link Clicked": "sms"},
        description="Track events that are a response to a channel's message.")
    content_events: list[str] = Field(
        ["Video Playback Started", "Video Content Started", "Video Content Playing", "Video Content Completed",
         "Product Viewed", "Product Clicked", "Product Added", "Content Viewed"],
        description="Track events that are an interaction with a content item.")
    content_id_properties: list[str] = Field(["content_id", "asset_id", "video_id", "product_id"],
                                             description="Properties holding the content item's id, first found wins.")
    content_category_properties: list[str] = Field(["category", "genre", "content_category"],
                                                   description="Properties holding the content's category.")

    @model_validator(mode="before")
    @classmethod
    def _defaults_follow_channels(cls, data: Any) -> Any:
        # A tenant that narrows its channels drops the default sends and responses of the others;
        # mappings it writes itself must name listed channels (checked below).
        if isinstance(data, dict) and isinstance(data.get("channels"), list):
            for field in ("sends", "responses"):
                if field not in data:
                    default = cls.model_fields[field].default
                    data = {**data, field: {k: v for k, v in default.items() if v in data["channels"]}}
        return data

    @model_validator(mode="after")
    def _known_channels(self) -> "TenantConfig":
        for field in ("sends", "responses"):
            unknown = sorted({ch for ch in getattr(self, field).values() if ch not in self.channels})
            if unknown:
                raise ValueError(f"{field} names channel(s) {', '.join(unknown)} not listed in channels")
        return self

    @classmethod
    def from_yaml(cls, text: str) -> "TenantConfig":
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise TenantConfigError(f"not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise TenantConfigError("the file must hold a mapping of settings")
        return cls.parse(data)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "TenantConfig":
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg'].removeprefix('Value error, ')}"
                                 for e in exc.errors())
            raise TenantConfigError(problems) from None


class Traits(msgspec.Struct, omit_defaults=True):
    """What an event means for the models, under a tenant's configuration."""

    visit: bool = False
    revenue: float | None = None
    channel: str | None = None
    send: bool = False
    response: bool = False
    content_id: str | None = None
    content_category: str | None = None


def _first(mapping: dict[str, Any], keys: list[str]) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return value
    return None


def classify(event: Event, config: TenantConfig) -> Traits:
    name, props = event.name, event.properties
    traits = Traits(visit=event.type in config.visit_types or (event.type == "track" and name in config.visit_events))
    if event.type == "track" and name in config.transaction_events:
        value = _first(props, config.revenue_properties)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            traits.revenue = float(value)
    if name in config.sends:
        traits.send, traits.channel = True, config.sends[name]
    elif name in config.responses:
        traits.response, traits.channel = True, config.responses[name]
    else:
        channel = event.context.get("channel")
        traits.channel = channel if channel in config.channels else None
    if event.type in ("track", "page", "screen") and (name in config.content_events or event.type != "track"):
        content = _first(props, config.content_id_properties)
        if content is not None and not isinstance(content, (dict, list)):
            traits.content_id = str(content)
            category = _first(props, config.content_category_properties)
            traits.content_category = str(category) if isinstance(category, (str, int)) else None
    return traits
