from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

ACTOR_CUSTOMER: Actor
ACTOR_SUPPORT: Actor
ACTOR_SYSTEM: Actor
ACTOR_TICKER: Actor
ACTOR_UNSPECIFIED: Actor
APPLICATION_STATUS_CANCELLED: ApplicationStatus
APPLICATION_STATUS_ISSUED: ApplicationStatus
APPLICATION_STATUS_PENDING: ApplicationStatus
APPLICATION_STATUS_REJECTED: ApplicationStatus
APPLICATION_STATUS_SUBMITTING: ApplicationStatus
APPLICATION_STATUS_UNSPECIFIED: ApplicationStatus
CERTIFICATE_STATE_CANCELLED: CertificateState
CERTIFICATE_STATE_EXPIRED: CertificateState
CERTIFICATE_STATE_HOSTED: CertificateState
CERTIFICATE_STATE_ISSUED: CertificateState
CERTIFICATE_STATE_NOT_ACTIVATED: CertificateState
CERTIFICATE_STATE_PENDING_APPLICATION: CertificateState
CERTIFICATE_STATE_REVOKED: CertificateState
CERTIFICATE_STATE_UNSPECIFIED: CertificateState
CERTIFICATE_STATE_VALIDATING: CertificateState
CERTIFICATE_STATE_VALIDATION_FAILED: CertificateState
DESCRIPTOR: _descriptor.FileDescriptor
DOMAIN_TYPE_MULTI: DomainType
DOMAIN_TYPE_SINGLE: DomainType
DOMAIN_TYPE_UNSPECIFIED: DomainType
DOMAIN_TYPE_WILDCARD: DomainType
EVENT_TYPE_ACTIVATED: EventType
EVENT_TYPE_APPLICATION_SUBMITTED: EventType
EVENT_TYPE_CANCELLED: EventType
EVENT_TYPE_COVERAGE_LAPSED: EventType
EVENT_TYPE_CREATED: EventType
EVENT_TYPE_DEPLOYMENT_OVERDUE: EventType
EVENT_TYPE_EXPIRED: EventType
EVENT_TYPE_EXPIRY_REMINDER: EventType
EVENT_TYPE_HOSTED: EventType
EVENT_TYPE_HOSTING_ENABLED: EventType
EVENT_TYPE_HOSTING_ENDED: EventType
EVENT_TYPE_HOSTING_ENDING: EventType
EVENT_TYPE_IMPORTED: EventType
EVENT_TYPE_ISSUED: EventType
EVENT_TYPE_RENEWAL_FAILED: EventType
EVENT_TYPE_RENEWAL_STARTED: EventType
EVENT_TYPE_REVOKED: EventType
EVENT_TYPE_SUPERSEDED: EventType
EVENT_TYPE_SUPPORT_CASE_OPENED: EventType
EVENT_TYPE_SUPPORT_CASE_RESOLVED: EventType
EVENT_TYPE_SUPPORT_CASE_UPDATED: EventType
EVENT_TYPE_TEMPLATE_UPDATED: EventType
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_VALIDATION_FAILED: EventType
HOSTING_STATUS_ACTIVE: HostingStatus
HOSTING_STATUS_ENDED: HostingStatus
HOSTING_STATUS_ENDING: HostingStatus
HOSTING_STATUS_LAPSED: HostingStatus
HOSTING_STATUS_NOT_HOSTED: HostingStatus
HOSTING_STATUS_UNSPECIFIED: HostingStatus
HOSTING_STATUS_WAITING: HostingStatus
KEY_ALGORITHM_ECDSA_P256: KeyAlgorithm
KEY_ALGORITHM_ECDSA_P384: KeyAlgorithm
KEY_ALGORITHM_RSA_2048: KeyAlgorithm
KEY_ALGORITHM_RSA_3072: KeyAlgorithm
KEY_ALGORITHM_RSA_4096: KeyAlgorithm
KEY_ALGORITHM_UNSPECIFIED: KeyAlgorithm
REJECTION_REASON_CAA: RejectionReason
REJECTION_REASON_DNS: RejectionReason
REJECTION_REASON_ORGANIZATION: RejectionReason
REJECTION_REASON_POLICY: RejectionReason
REJECTION_REASON_UNSPECIFIED: RejectionReason
RENEWAL_STATUS_FAILED: RenewalStatus
RENEWAL_STATUS_PENDING: RenewalStatus
RENEWAL_STATUS_RENEWED: RenewalStatus
RENEWAL_STATUS_UNSPECIFIED: RenewalStatus
REVOCATION_REASON_AFFILIATION_CHANGED: RevocationReason
REVOCATION_REASON_CESSATION_OF_OPERATION: RevocationReason
REVOCATION_REASON_KEY_COMPROMISE: RevocationReason
REVOCATION_REASON_SUPERSEDED: RevocationReason
REVOCATION_REASON_UNSPECIFIED: RevocationReason
VALIDATION_METHOD_DNS_TXT: ValidationMethod
VALIDATION_METHOD_UNSPECIFIED: ValidationMethod
VALIDATION_TYPE_DV: ValidationType
VALIDATION_TYPE_EV: ValidationType
VALIDATION_TYPE_OV: ValidationType
VALIDATION_TYPE_UNSPECIFIED: ValidationType
WEEKDAY_FRIDAY: Weekday
WEEKDAY_MONDAY: Weekday
WEEKDAY_SATURDAY: Weekday
WEEKDAY_SUNDAY: Weekday
WEEKDAY_THURSDAY: Weekday
WEEKDAY_TUESDAY: Weekday
WEEKDAY_UNSPECIFIED: Weekday
WEEKDAY_WEDNESDAY: Weekday

class ActivateCertificateRequest(_message.Message):
    __slots__ = ["certificate_id"]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    certificate_id: str
    def __init__(self, certificate_id: _Optional[str] = ...) -> None: ...

class ActivateCertificateResponse(_message.Message):
    __slots__ = ["certificate"]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ...) -> None: ...

class Application(_message.Message):
    __slots__ = ["application_id", "automatic", "certificate_id", "contact", "customer_key", "domains", "instructions", "key_algorithm", "organization", "rejection_message", "rejection_reason", "status", "submit_time", "update_time", "validation_method"]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATIC_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_KEY_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    KEY_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    REJECTION_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REJECTION_REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_METHOD_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    automatic: bool
    certificate_id: str
    contact: Contact
    customer_key: bool
    domains: _containers.RepeatedScalarFieldContainer[str]
    instructions: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    key_algorithm: KeyAlgorithm
    organization: Organization
    rejection_message: str
    rejection_reason: RejectionReason
    status: ApplicationStatus
    submit_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    validation_method: ValidationMethod
    def __init__(self, application_id: _Optional[str] = ..., certificate_id: _Optional[str] = ..., status: _Optional[_Union[ApplicationStatus, str]] = ..., domains: _Optional[_Iterable[str]] = ..., validation_method: _Optional[_Union[ValidationMethod, str]] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., organization: _Optional[_Union[Organization, _Mapping]] = ..., key_algorithm: _Optional[_Union[KeyAlgorithm, str]] = ..., customer_key: bool = ..., automatic: bool = ..., instructions: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ..., rejection_reason: _Optional[_Union[RejectionReason, str]] = ..., rejection_message: _Optional[str] = ..., submit_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BatchCreateBundlesRequest(_message.Message):
    __slots__ = ["requests"]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CreateBundleRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[CreateBundleRequest, _Mapping]]] = ...) -> None: ...

class BatchCreateBundlesResponse(_message.Message):
    __slots__ = ["bundles"]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    bundles: _containers.RepeatedCompositeFieldContainer[Bundle]
    def __init__(self, bundles: _Optional[_Iterable[_Union[Bundle, _Mapping]]] = ...) -> None: ...

class Bundle(_message.Message):
    __slots__ = ["account_id", "application_template", "bundle_id", "certificates", "create_time", "current_certificate_id", "current_issuance", "deployments", "domain_count", "expected_deployment_targets", "first_issue_time", "hosting", "hosting_end_time", "hosting_status", "maintenance_window", "order_id", "product", "renew_before", "subscription_years"]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ISSUANCE_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DEPLOYMENT_TARGETS_FIELD_NUMBER: _ClassVar[int]
    FIRST_ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    HOSTING_END_TIME_FIELD_NUMBER: _ClassVar[int]
    HOSTING_FIELD_NUMBER: _ClassVar[int]
    HOSTING_STATUS_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    RENEW_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_YEARS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    application_template: Application
    bundle_id: str
    certificates: _containers.RepeatedCompositeFieldContainer[Certificate]
    create_time: _timestamp_pb2.Timestamp
    current_certificate_id: str
    current_issuance: Issuance
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    domain_count: int
    expected_deployment_targets: _containers.RepeatedScalarFieldContainer[str]
    first_issue_time: _timestamp_pb2.Timestamp
    hosting: bool
    hosting_end_time: _timestamp_pb2.Timestamp
    hosting_status: HostingStatus
    maintenance_window: MaintenanceWindow
    order_id: str
    product: ProductSnapshot
    renew_before: _duration_pb2.Duration
    subscription_years: int
    def __init__(self, bundle_id: _Optional[str] = ..., order_id: _Optional[str] = ..., account_id: _Optional[str] = ..., product: _Optional[_Union[ProductSnapshot, _Mapping]] = ..., domain_count: _Optional[int] = ..., hosting: bool = ..., subscription_years: _Optional[int] = ..., certificates: _Optional[_Iterable[_Union[Certificate, _Mapping]]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., hosting_status: _Optional[_Union[HostingStatus, str]] = ..., first_issue_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., hosting_end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., renew_before: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., current_certificate_id: _Optional[str] = ..., current_issuance: _Optional[_Union[Issuance, _Mapping]] = ..., application_template: _Optional[_Union[Application, _Mapping]] = ..., maintenance_window: _Optional[_Union[MaintenanceWindow, _Mapping]] = ..., expected_deployment_targets: _Optional[_Iterable[str]] = ..., deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ...) -> None: ...

class CancelBundleRequest(_message.Message):
    __slots__ = ["account_id", "bundle_id", "order_id"]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    bundle_id: str
    order_id: str
    def __init__(self, bundle_id: _Optional[str] = ..., account_id: _Optional[str] = ..., order_id: _Optional[str] = ...) -> None: ...

class CancelBundleResponse(_message.Message):
    __slots__ = ["bundle"]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    bundle: Bundle
    def __init__(self, bundle: _Optional[_Union[Bundle, _Mapping]] = ...) -> None: ...

class Certificate(_message.Message):
    __slots__ = ["bundle_id", "certificate_id", "coverage_end_time", "coverage_start_time", "create_time", "current_application", "current_issuance", "days_covered", "days_paid", "renew_time", "renewal_retries", "renewal_status", "renewal_support_case_id", "retry_time", "sequence", "state", "update_time"]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_END_TIME_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_START_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_APPLICATION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ISSUANCE_FIELD_NUMBER: _ClassVar[int]
    DAYS_COVERED_FIELD_NUMBER: _ClassVar[int]
    DAYS_PAID_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_SUPPORT_CASE_ID_FIELD_NUMBER: _ClassVar[int]
    RENEW_TIME_FIELD_NUMBER: _ClassVar[int]
    RETRY_TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    certificate_id: str
    coverage_end_time: _timestamp_pb2.Timestamp
    coverage_start_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    current_application: Application
    current_issuance: Issuance
    days_covered: int
    days_paid: int
    renew_time: _timestamp_pb2.Timestamp
    renewal_retries: int
    renewal_status: RenewalStatus
    renewal_support_case_id: str
    retry_time: _timestamp_pb2.Timestamp
    sequence: int
    state: CertificateState
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, certificate_id: _Optional[str] = ..., bundle_id: _Optional[str] = ..., sequence: _Optional[int] = ..., state: _Optional[_Union[CertificateState, str]] = ..., coverage_start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., coverage_end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., current_issuance: _Optional[_Union[Issuance, _Mapping]] = ..., current_application: _Optional[_Union[Application, _Mapping]] = ..., renew_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., retry_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., renewal_retries: _Optional[int] = ..., days_paid: _Optional[int] = ..., days_covered: _Optional[int] = ..., renewal_status: _Optional[_Union[RenewalStatus, str]] = ..., renewal_support_case_id: _Optional[str] = ...) -> None: ...

class Contact(_message.Message):
    __slots__ = ["email", "name", "phone"]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    email: str
    name: str
    phone: str
    def __init__(self, name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ...) -> None: ...

class CreateBundleRequest(_message.Message):
    __slots__ = ["account_id", "bundle_id", "domain_count", "hosting", "order_id", "product", "subscription_years"]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    HOSTING_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_YEARS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    bundle_id: str
    domain_count: int
    hosting: bool
    order_id: str
    product: ProductSnapshot
    subscription_years: int
    def __init__(self, bundle_id: _Optional[str] = ..., account_id: _Optional[str] = ..., order_id: _Optional[str] = ..., product: _Optional[_Union[ProductSnapshot, _Mapping]] = ..., domain_count: _Optional[int] = ..., subscription_years: _Optional[int] = ..., hosting: bool = ...) -> None: ...

class CreateBundleResponse(_message.Message):
    __slots__ = ["bundle"]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    bundle: Bundle
    def __init__(self, bundle: _Optional[_Union[Bundle, _Mapping]] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ["bundle_id", "certificate_id", "certificate_path", "deploy_time", "error", "host", "issuance_id", "private_key_path", "record_time", "serial_number", "success", "target"]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PATH_FIELD_NUMBER: _ClassVar[int]
    DEPLOY_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    ISSUANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_PATH_FIELD_NUMBER: _ClassVar[int]
    RECORD_TIME_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    certificate_id: str
    certificate_path: str
    deploy_time: _timestamp_pb2.Timestamp
    error: str
    host: str
    issuance_id: str
    private_key_path: str
    record_time: _timestamp_pb2.Timestamp
    serial_number: str
    success: bool
    target: str
    def __init__(self, bundle_id: _Optional[str] = ..., certificate_id: _Optional[str] = ..., issuance_id: _Optional[str] = ..., serial_number: _Optional[str] = ..., target: _Optional[str] = ..., host: _Optional[str] = ..., certificate_path: _Optional[str] = ..., private_key_path: _Optional[str] = ..., deploy_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., success: bool = ..., error: _Optional[str] = ..., record_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DnsRecord(_message.Message):
    __slots__ = ["name", "type", "value"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    value: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class EnableHostingRequest(_message.Message):
    __slots__ = ["bundle_id"]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    def __init__(self, bundle_id: _Optional[str] = ...) -> None: ...

class EnableHostingResponse(_message.Message):
    __slots__ = ["bundle"]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    bundle: Bundle
    def __init__(self, bundle: _Optional[_Union[Bundle, _Mapping]] = ...) -> None: ...

class ExportCertificateRequest(_message.Message):
    __slots__ = ["certificate_id"]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    certificate_id: str
    def __init__(self, certificate_id: _Optional[str] = ...) -> None: ...

class ExportCertificateResponse(_message.Message):
    __slots__ = ["issuance", "private_key_pem"]
    ISSUANCE_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    issuance: Issuance
    private_key_pem: str
    def __init__(self, issuance: _Optional[_Union[Issuance, _Mapping]] = ..., private_key_pem: _Optional[str] = ...) -> None: ...

class GetBundleRequest(_message.Message):
    __slots__ = ["bundle_id"]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    def __init__(self, bundle_id: _Optional[str] = ...) -> None: ...

class GetBundleResponse(_message.Message):
    __slots__ = ["bundle"]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    bundle: Bundle
    def __init__(self, bundle: _Optional[_Union[Bundle, _Mapping]] = ...) -> None: ...

class GetCertificateLifecycleRequest(_message.Message):
    __slots__ = ["certificate_id", "page_size", "page_token"]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    certificate_id: str
    page_size: int
    page_token: str
    def __init__(self, certificate_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetCertificateLifecycleResponse(_message.Message):
    __slots__ = ["events", "next_page_token"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[LifecycleEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[LifecycleEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetCertificateRequest(_message.Message):
    __slots__ = ["certificate_id"]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    certificate_id: str
    def __init__(self, certificate_id: _Optional[str] = ...) -> None: ...

class GetCertificateResponse(_message.Message):
    __slots__ = ["certificate"]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ...) -> None: ...

class ImportCertificateRequest(_message.Message):
    __slots__ = ["certificate_chain_pem", "certificate_id", "contact", "organization", "private_key_pem"]
    CERTIFICATE_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate_chain_pem: str
    certificate_id: str
    contact: Contact
    organization: Organization
    private_key_pem: str
    def __init__(self, certificate_id: _Optional[str] = ..., certificate_chain_pem: _Optional[str] = ..., private_key_pem: _Optional[str] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., organization: _Optional[_Union[Organization, _Mapping]] = ...) -> None: ...

class ImportCertificateResponse(_message.Message):
    __slots__ = ["certificate", "instructions"]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    instructions: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ..., instructions: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ...) -> None: ...

class Issuance(_message.Message):
    __slots__ = ["application_id", "certificate_chain_pem", "issuance_id", "issue_time", "not_after", "not_before", "revocation_reason", "revoke_time", "serial_number"]
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    ISSUANCE_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    certificate_chain_pem: str
    issuance_id: str
    issue_time: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    not_before: _timestamp_pb2.Timestamp
    revocation_reason: RevocationReason
    revoke_time: _timestamp_pb2.Timestamp
    serial_number: str
    def __init__(self, issuance_id: _Optional[str] = ..., application_id: _Optional[str] = ..., serial_number: _Optional[str] = ..., not_before: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., certificate_chain_pem: _Optional[str] = ..., issue_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., revocation_reason: _Optional[_Union[RevocationReason, str]] = ...) -> None: ...

class LifecycleEvent(_message.Message):
    __slots__ = ["actor", "bundle_id", "certificate_id", "event_id", "from_state", "reason", "support_case_id", "time", "to_state", "type"]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_CASE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    actor: Actor
    bundle_id: str
    certificate_id: str
    event_id: str
    from_state: CertificateState
    reason: str
    support_case_id: str
    time: _timestamp_pb2.Timestamp
    to_state: CertificateState
    type: EventType
    def __init__(self, event_id: _Optional[str] = ..., certificate_id: _Optional[str] = ..., bundle_id: _Optional[str] = ..., from_state: _Optional[_Union[CertificateState, str]] = ..., to_state: _Optional[_Union[CertificateState, str]] = ..., actor: _Optional[_Union[Actor, str]] = ..., reason: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[EventType, str]] = ..., support_case_id: _Optional[str] = ...) -> None: ...

class ListBundlesRequest(_message.Message):
    __slots__ = ["domain", "expire_before", "hosting_status", "page_size", "page_token", "state"]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    HOSTING_STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    domain: str
    expire_before: _timestamp_pb2.Timestamp
    hosting_status: HostingStatus
    page_size: int
    page_token: str
    state: CertificateState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., domain: _Optional[str] = ..., state: _Optional[_Union[CertificateState, str]] = ..., hosting_status: _Optional[_Union[HostingStatus, str]] = ..., expire_before: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListBundlesResponse(_message.Message):
    __slots__ = ["bundles", "next_page_token"]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    bundles: _containers.RepeatedCompositeFieldContainer[Bundle]
    next_page_token: str
    def __init__(self, bundles: _Optional[_Iterable[_Union[Bundle, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListCertificatesRequest(_message.Message):
    __slots__ = ["bundle_id", "domain", "expire_before", "hosting_status", "page_size", "page_token", "state"]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    HOSTING_STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    domain: str
    expire_before: _timestamp_pb2.Timestamp
    hosting_status: HostingStatus
    page_size: int
    page_token: str
    state: CertificateState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., bundle_id: _Optional[str] = ..., state: _Optional[_Union[CertificateState, str]] = ..., domain: _Optional[str] = ..., hosting_status: _Optional[_Union[HostingStatus, str]] = ..., expire_before: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListCertificatesResponse(_message.Message):
    __slots__ = ["certificates", "next_page_token"]
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    certificates: _containers.RepeatedCompositeFieldContainer[Certificate]
    next_page_token: str
    def __init__(self, certificates: _Optional[_Iterable[_Union[Certificate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MaintenanceWindow(_message.Message):
    __slots__ = ["days", "duration_hours", "start_hour", "time_zone"]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    DURATION_HOURS_FIELD_NUMBER: _ClassVar[int]
    START_HOUR_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    days: _containers.RepeatedScalarFieldContainer[Weekday]
    duration_hours: int
    start_hour: int
    time_zone: str
    def __init__(self, days: _Optional[_Iterable[_Union[Weekday, str]]] = ..., start_hour: _Optional[int] = ..., duration_hours: _Optional[int] = ..., time_zone: _Optional[str] = ...) -> None: ...

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

class ProductSnapshot(_message.Message):
    __slots__ = ["domain_type", "product_id", "validation_type"]
    DOMAIN_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    domain_type: DomainType
    product_id: str
    validation_type: ValidationType
    def __init__(self, product_id: _Optional[str] = ..., validation_type: _Optional[_Union[ValidationType, str]] = ..., domain_type: _Optional[_Union[DomainType, str]] = ...) -> None: ...

class RecordDeploymentRequest(_message.Message):
    __slots__ = ["bundle_id", "certificate_path", "deploy_time", "error", "host", "issuance_id", "private_key_path", "success", "target"]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PATH_FIELD_NUMBER: _ClassVar[int]
    DEPLOY_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    ISSUANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_PATH_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    certificate_path: str
    deploy_time: _timestamp_pb2.Timestamp
    error: str
    host: str
    issuance_id: str
    private_key_path: str
    success: bool
    target: str
    def __init__(self, bundle_id: _Optional[str] = ..., issuance_id: _Optional[str] = ..., target: _Optional[str] = ..., host: _Optional[str] = ..., certificate_path: _Optional[str] = ..., private_key_path: _Optional[str] = ..., deploy_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., success: bool = ..., error: _Optional[str] = ...) -> None: ...

class RecordDeploymentResponse(_message.Message):
    __slots__ = ["deployment"]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class ReissueCertificateRequest(_message.Message):
    __slots__ = ["certificate_id", "csr_pem", "key_algorithm"]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    KEY_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    certificate_id: str
    csr_pem: str
    key_algorithm: KeyAlgorithm
    def __init__(self, certificate_id: _Optional[str] = ..., key_algorithm: _Optional[_Union[KeyAlgorithm, str]] = ..., csr_pem: _Optional[str] = ...) -> None: ...

class ReissueCertificateResponse(_message.Message):
    __slots__ = ["certificate", "instructions"]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    instructions: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ..., instructions: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ...) -> None: ...

class RenewCertificateRequest(_message.Message):
    __slots__ = ["certificate_id"]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    certificate_id: str
    def __init__(self, certificate_id: _Optional[str] = ...) -> None: ...

class RenewCertificateResponse(_message.Message):
    __slots__ = ["certificate"]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ...) -> None: ...

class RetryApplicationRequest(_message.Message):
    __slots__ = ["certificate_id"]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    certificate_id: str
    def __init__(self, certificate_id: _Optional[str] = ...) -> None: ...

class RetryApplicationResponse(_message.Message):
    __slots__ = ["certificate", "instructions"]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    instructions: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ..., instructions: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ...) -> None: ...

class RevokeCertificateRequest(_message.Message):
    __slots__ = ["certificate_id", "reason"]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    certificate_id: str
    reason: RevocationReason
    def __init__(self, certificate_id: _Optional[str] = ..., reason: _Optional[_Union[RevocationReason, str]] = ...) -> None: ...

class RevokeCertificateResponse(_message.Message):
    __slots__ = ["certificate"]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ...) -> None: ...

class SubmitApplicationRequest(_message.Message):
    __slots__ = ["certificate_id", "contact", "csr_pem", "domains", "key_algorithm", "organization", "validation_method"]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    KEY_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_METHOD_FIELD_NUMBER: _ClassVar[int]
    certificate_id: str
    contact: Contact
    csr_pem: str
    domains: _containers.RepeatedScalarFieldContainer[str]
    key_algorithm: KeyAlgorithm
    organization: Organization
    validation_method: ValidationMethod
    def __init__(self, certificate_id: _Optional[str] = ..., domains: _Optional[_Iterable[str]] = ..., validation_method: _Optional[_Union[ValidationMethod, str]] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., organization: _Optional[_Union[Organization, _Mapping]] = ..., key_algorithm: _Optional[_Union[KeyAlgorithm, str]] = ..., csr_pem: _Optional[str] = ...) -> None: ...

class SubmitApplicationResponse(_message.Message):
    __slots__ = ["certificate", "instructions"]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    certificate: Certificate
    instructions: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    def __init__(self, certificate: _Optional[_Union[Certificate, _Mapping]] = ..., instructions: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ...) -> None: ...

class UpdateApplicationTemplateRequest(_message.Message):
    __slots__ = ["bundle_id", "contact", "domains", "organization"]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    contact: Contact
    domains: _containers.RepeatedScalarFieldContainer[str]
    organization: Organization
    def __init__(self, bundle_id: _Optional[str] = ..., domains: _Optional[_Iterable[str]] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., organization: _Optional[_Union[Organization, _Mapping]] = ...) -> None: ...

class UpdateApplicationTemplateResponse(_message.Message):
    __slots__ = ["bundle", "instructions"]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    bundle: Bundle
    instructions: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    def __init__(self, bundle: _Optional[_Union[Bundle, _Mapping]] = ..., instructions: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ...) -> None: ...

class UpdateBundleRequest(_message.Message):
    __slots__ = ["bundle_id", "clear_expected_deployment_targets", "clear_maintenance_window", "expected_deployment_targets", "maintenance_window", "renew_before"]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CLEAR_EXPECTED_DEPLOYMENT_TARGETS_FIELD_NUMBER: _ClassVar[int]
    CLEAR_MAINTENANCE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DEPLOYMENT_TARGETS_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    RENEW_BEFORE_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    clear_expected_deployment_targets: bool
    clear_maintenance_window: bool
    expected_deployment_targets: _containers.RepeatedScalarFieldContainer[str]
    maintenance_window: MaintenanceWindow
    renew_before: _duration_pb2.Duration
    def __init__(self, bundle_id: _Optional[str] = ..., renew_before: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., maintenance_window: _Optional[_Union[MaintenanceWindow, _Mapping]] = ..., clear_maintenance_window: bool = ..., expected_deployment_targets: _Optional[_Iterable[str]] = ..., clear_expected_deployment_targets: bool = ...) -> None: ...

class UpdateBundleResponse(_message.Message):
    __slots__ = ["bundle"]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    bundle: Bundle
    def __init__(self, bundle: _Optional[_Union[Bundle, _Mapping]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ["after_event_id", "bundle_id"]
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    after_event_id: str
    bundle_id: str
    def __init__(self, after_event_id: _Optional[str] = ..., bundle_id: _Optional[str] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ["event"]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: LifecycleEvent
    def __init__(self, event: _Optional[_Union[LifecycleEvent, _Mapping]] = ...) -> None: ...

class ValidationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class DomainType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class CertificateState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Actor(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class HostingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class RenewalStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ValidationMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class KeyAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ApplicationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class RejectionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class RevocationReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Weekday(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
