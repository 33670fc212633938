from certhosting.lifecycle.v1 import lifecycle_pb2 as _lifecycle_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
SUPPORT_CASE_KIND_CUSTOMER_REQUEST: SupportCaseKind
SUPPORT_CASE_KIND_DEPLOYMENT_MISSING: SupportCaseKind
SUPPORT_CASE_KIND_LATE_RENEWAL: SupportCaseKind
SUPPORT_CASE_KIND_UNSPECIFIED: SupportCaseKind
SUPPORT_CASE_KIND_VALIDATION_FAILED: SupportCaseKind
SUPPORT_CASE_STATUS_IN_PROGRESS: SupportCaseStatus
SUPPORT_CASE_STATUS_OPEN: SupportCaseStatus
SUPPORT_CASE_STATUS_RESOLVED: SupportCaseStatus
SUPPORT_CASE_STATUS_UNSPECIFIED: SupportCaseStatus

class AccountEngineer(_message.Message):
    __slots__ = ["account_id", "assign_time", "engineer"]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_TIME_FIELD_NUMBER: _ClassVar[int]
    ENGINEER_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    assign_time: _timestamp_pb2.Timestamp
    engineer: str
    def __init__(self, account_id: _Optional[str] = ..., engineer: _Optional[str] = ..., assign_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSupportCaseRequest(_message.Message):
    __slots__ = ["bundle_id", "certificate_id", "request_id", "summary"]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    certificate_id: str
    request_id: str
    summary: str
    def __init__(self, request_id: _Optional[str] = ..., bundle_id: _Optional[str] = ..., certificate_id: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class CreateSupportCaseResponse(_message.Message):
    __slots__ = ["case"]
    CASE_FIELD_NUMBER: _ClassVar[int]
    case: SupportCase
    def __init__(self, case: _Optional[_Union[SupportCase, _Mapping]] = ...) -> None: ...

class GetAccountEngineerRequest(_message.Message):
    __slots__ = ["account_id"]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class GetAccountEngineerResponse(_message.Message):
    __slots__ = ["account_engineer"]
    ACCOUNT_ENGINEER_FIELD_NUMBER: _ClassVar[int]
    account_engineer: AccountEngineer
    def __init__(self, account_engineer: _Optional[_Union[AccountEngineer, _Mapping]] = ...) -> None: ...

class GetSupportCaseRequest(_message.Message):
    __slots__ = ["case_id"]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    def __init__(self, case_id: _Optional[str] = ...) -> None: ...

class GetSupportCaseResponse(_message.Message):
    __slots__ = ["application", "case", "certificate", "events"]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    CASE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    application: _lifecycle_pb2.Application
    case: SupportCase
    certificate: _lifecycle_pb2.Certificate
    events: _containers.RepeatedCompositeFieldContainer[_lifecycle_pb2.LifecycleEvent]
    def __init__(self, case: _Optional[_Union[SupportCase, _Mapping]] = ..., certificate: _Optional[_Union[_lifecycle_pb2.Certificate, _Mapping]] = ..., application: _Optional[_Union[_lifecycle_pb2.Application, _Mapping]] = ..., events: _Optional[_Iterable[_Union[_lifecycle_pb2.LifecycleEvent, _Mapping]]] = ...) -> None: ...

class ListSupportCasesRequest(_message.Message):
    __slots__ = ["assignee", "page_size", "page_token", "status"]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    assignee: str
    page_size: int
    page_token: str
    status: SupportCaseStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[SupportCaseStatus, str]] = ..., assignee: _Optional[str] = ...) -> None: ...

class ListSupportCasesResponse(_message.Message):
    __slots__ = ["cases", "next_page_token"]
    CASES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    cases: _containers.RepeatedCompositeFieldContainer[SupportCase]
    next_page_token: str
    def __init__(self, cases: _Optional[_Iterable[_Union[SupportCase, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetAccountEngineerRequest(_message.Message):
    __slots__ = ["account_id", "engineer", "move_open_cases"]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINEER_FIELD_NUMBER: _ClassVar[int]
    MOVE_OPEN_CASES_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    engineer: str
    move_open_cases: bool
    def __init__(self, account_id: _Optional[str] = ..., engineer: _Optional[str] = ..., move_open_cases: bool = ...) -> None: ...

class SetAccountEngineerResponse(_message.Message):
    __slots__ = ["account_engineer", "moved_cases"]
    ACCOUNT_ENGINEER_FIELD_NUMBER: _ClassVar[int]
    MOVED_CASES_FIELD_NUMBER: _ClassVar[int]
    account_engineer: AccountEngineer
    moved_cases: int
    def __init__(self, account_engineer: _Optional[_Union[AccountEngineer, _Mapping]] = ..., moved_cases: _Optional[int] = ...) -> None: ...

class SupportCase(_message.Message):
    __slots__ = ["account_id", "application_id", "assignee", "bundle_id", "case_id", "certificate_id", "create_time", "kind", "notes", "rejection_reason", "status", "summary", "update_time", "urgent"]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    REJECTION_REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    URGENT_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    application_id: str
    assignee: str
    bundle_id: str
    case_id: str
    certificate_id: str
    create_time: _timestamp_pb2.Timestamp
    kind: SupportCaseKind
    notes: _containers.RepeatedCompositeFieldContainer[SupportCaseNote]
    rejection_reason: _lifecycle_pb2.RejectionReason
    status: SupportCaseStatus
    summary: str
    update_time: _timestamp_pb2.Timestamp
    urgent: bool
    def __init__(self, case_id: _Optional[str] = ..., account_id: _Optional[str] = ..., bundle_id: _Optional[str] = ..., certificate_id: _Optional[str] = ..., application_id: _Optional[str] = ..., kind: _Optional[_Union[SupportCaseKind, str]] = ..., urgent: bool = ..., status: _Optional[_Union[SupportCaseStatus, str]] = ..., assignee: _Optional[str] = ..., rejection_reason: _Optional[_Union[_lifecycle_pb2.RejectionReason, str]] = ..., summary: _Optional[str] = ..., notes: _Optional[_Iterable[_Union[SupportCaseNote, _Mapping]]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SupportCaseNote(_message.Message):
    __slots__ = ["author", "text", "time"]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    author: str
    text: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, author: _Optional[str] = ..., text: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpdateSupportCaseRequest(_message.Message):
    __slots__ = ["assignee", "case_id", "note", "status"]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    assignee: str
    case_id: str
    note: str
    status: SupportCaseStatus
    def __init__(self, case_id: _Optional[str] = ..., status: _Optional[_Union[SupportCaseStatus, str]] = ..., note: _Optional[str] = ..., assignee: _Optional[str] = ...) -> None: ...

class UpdateSupportCaseResponse(_message.Message):
    __slots__ = ["case"]
    CASE_FIELD_NUMBER: _ClassVar[int]
    case: SupportCase
    def __init__(self, case: _Optional[_Union[SupportCase, _Mapping]] = ...) -> None: ...

class SupportCaseKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class SupportCaseStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
