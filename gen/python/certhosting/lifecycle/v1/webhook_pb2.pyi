from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
NOTIFICATION_KIND_COVERAGE_LAPSED: NotificationKind
NOTIFICATION_KIND_EXPIRY_REMINDER: NotificationKind
NOTIFICATION_KIND_HOSTING_ENDING: NotificationKind
NOTIFICATION_KIND_ISSUED: NotificationKind
NOTIFICATION_KIND_RECORDS_TO_PUBLISH: NotificationKind
NOTIFICATION_KIND_RENEWAL_FAILED: NotificationKind
NOTIFICATION_KIND_RENEWED: NotificationKind
NOTIFICATION_KIND_SUPPORT_CASE_OPENED: NotificationKind
NOTIFICATION_KIND_SUPPORT_CASE_RESOLVED: NotificationKind
NOTIFICATION_KIND_SUPPORT_CASE_UPDATED: NotificationKind
NOTIFICATION_KIND_UNSPECIFIED: NotificationKind
WEBHOOK_DELIVERY_STATUS_FAILED: WebhookDeliveryStatus
WEBHOOK_DELIVERY_STATUS_PENDING: WebhookDeliveryStatus
WEBHOOK_DELIVERY_STATUS_SUCCEEDED: WebhookDeliveryStatus
WEBHOOK_DELIVERY_STATUS_UNSPECIFIED: WebhookDeliveryStatus

class CreateWebhookEndpointRequest(_message.Message):
    __slots__ = ["description", "event_kinds", "url"]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EVENT_KINDS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    description: str
    event_kinds: _containers.RepeatedScalarFieldContainer[NotificationKind]
    url: str
    def __init__(self, url: _Optional[str] = ..., event_kinds: _Optional[_Iterable[_Union[NotificationKind, str]]] = ..., description: _Optional[str] = ...) -> None: ...

class CreateWebhookEndpointResponse(_message.Message):
    __slots__ = ["secret", "webhook_endpoint"]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    secret: str
    webhook_endpoint: WebhookEndpoint
    def __init__(self, webhook_endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointRequest(_message.Message):
    __slots__ = ["webhook_endpoint_id"]
    WEBHOOK_ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    webhook_endpoint_id: str
    def __init__(self, webhook_endpoint_id: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetWebhookEndpointRequest(_message.Message):
    __slots__ = ["webhook_endpoint_id"]
    WEBHOOK_ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    webhook_endpoint_id: str
    def __init__(self, webhook_endpoint_id: _Optional[str] = ...) -> None: ...

class GetWebhookEndpointResponse(_message.Message):
    __slots__ = ["webhook_endpoint"]
    WEBHOOK_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    webhook_endpoint: WebhookEndpoint
    def __init__(self, webhook_endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "webhook_endpoint_id"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    webhook_endpoint_id: str
    def __init__(self, webhook_endpoint_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ["next_page_token", "webhook_deliveries"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    webhook_deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    def __init__(self, webhook_deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListWebhookEndpointsResponse(_message.Message):
    __slots__ = ["webhook_endpoints"]
    WEBHOOK_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    webhook_endpoints: _containers.RepeatedCompositeFieldContainer[WebhookEndpoint]
    def __init__(self, webhook_endpoints: _Optional[_Iterable[_Union[WebhookEndpoint, _Mapping]]] = ...) -> None: ...

class NotificationPayload(_message.Message):
    __slots__ = ["account_id", "bundle_id", "certificate_id", "event_time", "event_type", "kind", "notification_id", "reason", "support_case_id"]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_CASE_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    bundle_id: str
    certificate_id: str
    event_time: _timestamp_pb2.Timestamp
    event_type: str
    kind: NotificationKind
    notification_id: str
    reason: str
    support_case_id: str
    def __init__(self, notification_id: _Optional[str] = ..., kind: _Optional[_Union[NotificationKind, str]] = ..., account_id: _Optional[str] = ..., bundle_id: _Optional[str] = ..., certificate_id: _Optional[str] = ..., support_case_id: _Optional[str] = ..., event_type: _Optional[str] = ..., reason: _Optional[str] = ..., event_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReplayWebhookDeliveryRequest(_message.Message):
    __slots__ = ["webhook_delivery_id"]
    WEBHOOK_DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    webhook_delivery_id: str
    def __init__(self, webhook_delivery_id: _Optional[str] = ...) -> None: ...

class ReplayWebhookDeliveryResponse(_message.Message):
    __slots__ = ["webhook_delivery"]
    WEBHOOK_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    webhook_delivery: WebhookDelivery
    def __init__(self, webhook_delivery: _Optional[_Union[WebhookDelivery, _Mapping]] = ...) -> None: ...

class RotateWebhookSecretRequest(_message.Message):
    __slots__ = ["webhook_endpoint_id"]
    WEBHOOK_ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    webhook_endpoint_id: str
    def __init__(self, webhook_endpoint_id: _Optional[str] = ...) -> None: ...

class RotateWebhookSecretResponse(_message.Message):
    __slots__ = ["secret", "webhook_endpoint"]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    secret: str
    webhook_endpoint: WebhookEndpoint
    def __init__(self, webhook_endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class UpdateWebhookEndpointRequest(_message.Message):
    __slots__ = ["update_mask", "webhook_endpoint"]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    update_mask: _field_mask_pb2.FieldMask
    webhook_endpoint: WebhookEndpoint
    def __init__(self, webhook_endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateWebhookEndpointResponse(_message.Message):
    __slots__ = ["webhook_endpoint"]
    WEBHOOK_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    webhook_endpoint: WebhookEndpoint
    def __init__(self, webhook_endpoint: _Optional[_Union[WebhookEndpoint, _Mapping]] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ["attempts", "create_time", "kind", "last_attempt_time", "last_error", "last_status_code", "next_attempt_time", "notification_id", "status", "webhook_delivery_id", "webhook_endpoint_id"]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    create_time: _timestamp_pb2.Timestamp
    kind: NotificationKind
    last_attempt_time: _timestamp_pb2.Timestamp
    last_error: str
    last_status_code: int
    next_attempt_time: _timestamp_pb2.Timestamp
    notification_id: str
    status: WebhookDeliveryStatus
    webhook_delivery_id: str
    webhook_endpoint_id: str
    def __init__(self, webhook_delivery_id: _Optional[str] = ..., webhook_endpoint_id: _Optional[str] = ..., notification_id: _Optional[str] = ..., kind: _Optional[_Union[NotificationKind, str]] = ..., status: _Optional[_Union[WebhookDeliveryStatus, str]] = ..., attempts: _Optional[int] = ..., last_status_code: _Optional[int] = ..., last_error: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempt_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WebhookEndpoint(_message.Message):
    __slots__ = ["create_time", "description", "disabled", "event_kinds", "previous_secret_expire_time", "update_time", "url", "webhook_endpoint_id"]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    EVENT_KINDS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    create_time: _timestamp_pb2.Timestamp
    description: str
    disabled: bool
    event_kinds: _containers.RepeatedScalarFieldContainer[NotificationKind]
    previous_secret_expire_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    url: str
    webhook_endpoint_id: str
    def __init__(self, webhook_endpoint_id: _Optional[str] = ..., url: _Optional[str] = ..., event_kinds: _Optional[_Iterable[_Union[NotificationKind, str]]] = ..., description: _Optional[str] = ..., disabled: bool = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., previous_secret_expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NotificationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class WebhookDeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
