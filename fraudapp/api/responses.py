"""Answers of the JSON API as pydantic models: they describe (in the OpenAPI document) the bodies
the views and the app's error handlers write; tests check real answers against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Contribution(BaseModel):
    """One of the features that moved a score most."""

    feature: str = Field(description="the feature's name (a Handbook column name)")
    value: float = Field(description="the feature's value, as the model saw it")
    contribution: float = Field(description="its contribution to the score (log-odds)")
    text: str = Field(description="the same in plain words")


class Prediction(BaseModel):
    """The score of one transaction, the decision at the model's threshold, and what is stored."""

    model_config = ConfigDict(protected_namespaces=())

    id: int | None = Field(description="the stored prediction's id; null without consent")
    score: float = Field(ge=0, le=1, description="probability that the transaction is fraud")
    is_fraud: bool = Field(description="score >= threshold")
    threshold: float = Field(description="the decision threshold of the model version")
    model_version: str = Field(description="the model version that scored it")
    stored: bool = Field(description="whether the transaction and its score were stored")
    receipt: str | None = Field(
        description="code to see or delete what was stored, shown once; null when nothing was "
        "stored or when the answer is a replay"
    )
    replayed: bool = Field(description="answered from storage: its transaction_id was stored")
    features: dict[str, float] | None = Field(
        None, description="with ?explain=true: every model input by name, as the model saw it"
    )
    explanation: list[Contribution] | None = Field(
        None, description="with ?explain=true: the largest contributions, largest first"
    )


class Predictions(BaseModel):
    """The scores of a list of transactions, in the order sent."""

    predictions: list[Prediction]


class FeedbackResult(BaseModel):
    """The label stored for a prediction."""

    prediction_id: int
    label: Literal["fraud", "genuine"]
    source: str = Field(description='who gave it: "api:<token name>"')


class ModelInfo(BaseModel):
    """The model version serving this node."""

    version: str
    threshold: float
    meta: dict[str, Any] = Field(
        description="the version's metadata: feature names in order, parameters, training and "
        "validation windows, metrics, library versions, sha256 of the model file, created time"
    )


class FieldErrors(BaseModel):
    """Bad input: messages per field (`body` for the body as a whole, `transactions.3.amount`
    for an item of a list)."""

    errors: dict[str, list[str]]


class Error(BaseModel):
    """Any other refusal: missing token (401), unknown prediction (404), body too large (413),
    rate limit (429), no model or no database (503), ..."""

    error: str = Field(description="the HTTP status's name")
    message: str = Field(description="what went wrong")


class Health(BaseModel):
    """A node's health, for load balancers (GET /healthz)."""

    model_config = ConfigDict(protected_namespaces=())

    status: Literal["ok", "degraded", "no model", "database unreachable"]
    model_version: str | None = Field(description="the version serving; null while none does")
    role: str = Field(description='"web", "trainer" or "all"')
    worker: int = Field(description="the process id of the worker that answered")
    released: str | None = Field(None, description="the released version, when another serves")
    problem: str | None = Field(None, description="why the released version does not serve")
    error: str | None = Field(None, description="why the database does not answer")
    challenger: str | None = Field(None, description="the challenger in shadow, if any")
    challenger_problem: str | None = Field(
        None, description="why this worker cannot score with the challenger"
    )
