from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

API_KEY_ROLE_DEPLOYER: ApiKeyRole
API_KEY_ROLE_OWNER: ApiKeyRole
API_KEY_ROLE_READER: ApiKeyRole
API_KEY_ROLE_SERVICE: ApiKeyRole
API_KEY_ROLE_SUPPORT: ApiKeyRole
API_KEY_ROLE_UNSPECIFIED: ApiKeyRole
AUDIT_EVENT_KIND_ACCOUNT_CREATED: AuditEventKind
AUDIT_EVENT_KIND_ACCOUNT_ENGINEER_SET: AuditEventKind
AUDIT_EVENT_KIND_API_KEY_CREATED: AuditEventKind
AUDIT_EVENT_KIND_API_KEY_REVOKED: AuditEventKind
AUDIT_EVENT_KIND_CERTIFICATE_EXPORTED: AuditEventKind
AUDIT_EVENT_KIND_CERTIFICATE_REVOKED: AuditEventKind
AUDIT_EVENT_KIND_HOSTING_CHANGED: AuditEventKind
AUDIT_EVENT_KIND_SUPPORT_CASE_UPDATED: AuditEventKind
AUDIT_EVENT_KIND_UNSPECIFIED: AuditEventKind
AUDIT_EVENT_KIND_WEBHOOK_ENDPOINT_CHANGED: AuditEventKind
DESCRIPTOR: _descriptor.FileDescriptor

class AccountSettings(_message.Message):
    __slots__ = ["expiry_reminder_days", "update_time"]
    EXPIRY_REMINDER_DAYS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    expiry_reminder_days: _containers.RepeatedScalarFieldContainer[int]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, expiry_reminder_days: _Optional[_Iterable[int]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ["bundle_ids", "create_time", "expire_time", "key_id", "name", "revoke_time", "role"]
    BUNDLE_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    bundle_ids: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    key_id: str
    name: str
    revoke_time: _timestamp_pb2.Timestamp
    role: ApiKeyRole
    def __init__(self, key_id: _Optional[str] = ..., name: _Optional[str] = ..., role: _Optional[_Union[ApiKeyRole, str]] = ..., bundle_ids: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ["actor_key_id", "actor_name", "actor_role", "audit_event_id", "create_time", "detail", "kind", "resource"]
    ACTOR_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    AUDIT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    actor_key_id: str
    actor_name: str
    actor_role: str
    audit_event_id: str
    create_time: _timestamp_pb2.Timestamp
    detail: str
    kind: AuditEventKind
    resource: str
    def __init__(self, audit_event_id: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[AuditEventKind, str]] = ..., actor_key_id: _Optional[str] = ..., actor_role: _Optional[str] = ..., actor_name: _Optional[str] = ..., resource: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ["bundle_ids", "expire_time", "name", "role"]
    BUNDLE_IDS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    bundle_ids: _containers.RepeatedScalarFieldContainer[str]
    expire_time: _timestamp_pb2.Timestamp
    name: str
    role: ApiKeyRole
    def __init__(self, name: _Optional[str] = ..., role: _Optional[_Union[ApiKeyRole, str]] = ..., bundle_ids: _Optional[_Iterable[str]] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ["api_key", "secret"]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    api_key: ApiKey
    secret: str
    def __init__(self, api_key: _Optional[_Union[ApiKey, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class GetAccountSettingsRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetAccountSettingsResponse(_message.Message):
    __slots__ = ["settings"]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: AccountSettings
    def __init__(self, settings: _Optional[_Union[AccountSettings, _Mapping]] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ["page_size", "page_token"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ["api_keys", "next_page_token"]
    API_KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    api_keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    next_page_token: str
    def __init__(self, api_keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ["end_time", "kinds", "page_size", "page_token", "start_time"]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    end_time: _timestamp_pb2.Timestamp
    kinds: _containers.RepeatedScalarFieldContainer[AuditEventKind]
    page_size: int
    page_token: str
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[AuditEventKind, str]]] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ["audit_events", "next_page_token"]
    AUDIT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    audit_events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, audit_events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ["key_id"]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    def __init__(self, key_id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ["api_key"]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: ApiKey
    def __init__(self, api_key: _Optional[_Union[ApiKey, _Mapping]] = ...) -> None: ...

class UpdateAccountSettingsRequest(_message.Message):
    __slots__ = ["settings", "update_mask"]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    settings: AccountSettings
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, settings: _Optional[_Union[AccountSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateAccountSettingsResponse(_message.Message):
    __slots__ = ["settings"]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: AccountSettings
    def __init__(self, settings: _Optional[_Union[AccountSettings, _Mapping]] = ...) -> None: ...

class ApiKeyRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class AuditEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
