from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

APPLICATION_STATE_ISSUED: ApplicationState
APPLICATION_STATE_PENDING: ApplicationState
APPLICATION_STATE_REJECTED: ApplicationState
APPLICATION_STATE_UNSPECIFIED: ApplicationState
DESCRIPTOR: _descriptor.FileDescriptor
REJECTION_REASON_CAA: RejectionReason
REJECTION_REASON_DNS: RejectionReason
REJECTION_REASON_ORGANIZATION: RejectionReason
REJECTION_REASON_POLICY: RejectionReason
REJECTION_REASON_UNSPECIFIED: RejectionReason

class CancelRequest(_message.Message):
    __slots__ = ["ref"]
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class Contact(_message.Message):
    __slots__ = ["email", "name", "phone"]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    email: str
    name: str
    phone: str
    def __init__(self, name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ...) -> None: ...

class DnsRecord(_message.Message):
    __slots__ = ["name", "type", "value"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    value: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ["ref"]
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ["certificate_chain_pem", "message", "rejection_reason", "retry_after", "state"]
    CERTIFICATE_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REJECTION_REASON_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    certificate_chain_pem: str
    message: str
    rejection_reason: RejectionReason
    retry_after: _duration_pb2.Duration
    state: ApplicationState
    def __init__(self, state: _Optional[_Union[ApplicationState, str]] = ..., retry_after: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., certificate_chain_pem: _Optional[str] = ..., rejection_reason: _Optional[_Union[RejectionReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class Organization(_message.Message):
    __slots__ = ["country", "legal_name", "locality", "registration_number", "state_or_province"]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    LEGAL_NAME_FIELD_NUMBER: _ClassVar[int]
    LOCALITY_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_OR_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    country: str
    legal_name: str
    locality: str
    registration_number: str
    state_or_province: str
    def __init__(self, legal_name: _Optional[str] = ..., country: _Optional[str] = ..., state_or_province: _Optional[str] = ..., locality: _Optional[str] = ..., registration_number: _Optional[str] = ...) -> None: ...

class RevokeRequest(_message.Message):
    __slots__ = ["certificate_chain_pem", "reason"]
    CERTIFICATE_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    certificate_chain_pem: str
    reason: int
    def __init__(self, certificate_chain_pem: _Optional[str] = ..., reason: _Optional[int] = ...) -> None: ...

class RevokeResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ["application_id", "binding", "contact", "csr_der", "domains", "lifetime", "not_after", "organization", "replaces_pem", "validation"]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    CSR_DER_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    REPLACES_PEM_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    binding: str
    contact: Contact
    csr_der: bytes
    domains: _containers.RepeatedScalarFieldContainer[str]
    lifetime: _duration_pb2.Duration
    not_after: _timestamp_pb2.Timestamp
    organization: Organization
    replaces_pem: str
    validation: str
    def __init__(self, application_id: _Optional[str] = ..., domains: _Optional[_Iterable[str]] = ..., csr_der: _Optional[bytes] = ..., validation: _Optional[str] = ..., organization: _Optional[_Union[Organization, _Mapping]] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., not_after: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., lifetime: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., binding: _Optional[str] = ..., replaces_pem: _Optional[str] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ["instructions", "ref"]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    instructions: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    ref: str
    def __init__(self, ref: _Optional[str] = ..., instructions: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ...) -> None: ...

class ApplicationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class RejectionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
