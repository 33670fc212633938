from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
DOMAIN_TYPE_MULTI: DomainType
DOMAIN_TYPE_SINGLE: DomainType
DOMAIN_TYPE_UNSPECIFIED: DomainType
DOMAIN_TYPE_WILDCARD: DomainType
ORDER_STATUS_CANCELLED: OrderStatus
ORDER_STATUS_PAID: OrderStatus
ORDER_STATUS_REFUNDED: OrderStatus
ORDER_STATUS_UNPAID: OrderStatus
ORDER_STATUS_UNSPECIFIED: OrderStatus
REFUND_STATUS_REFUNDED: RefundStatus
REFUND_STATUS_REFUSED: RefundStatus
REFUND_STATUS_REQUESTED: RefundStatus
REFUND_STATUS_UNSPECIFIED: RefundStatus
VALIDATION_TYPE_DV: ValidationType
VALIDATION_TYPE_EV: ValidationType
VALIDATION_TYPE_OV: ValidationType
VALIDATION_TYPE_UNSPECIFIED: ValidationType

class CancelOrderRequest(_message.Message):
    __slots__ = ["order_id"]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class CancelOrderResponse(_message.Message):
    __slots__ = ["order"]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class CreateOrderRequest(_message.Message):
    __slots__ = ["domain_count", "hosting", "product_id", "request_id", "subscription_years"]
    DOMAIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    HOSTING_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_YEARS_FIELD_NUMBER: _ClassVar[int]
    domain_count: int
    hosting: bool
    product_id: str
    request_id: str
    subscription_years: int
    def __init__(self, request_id: _Optional[str] = ..., product_id: _Optional[str] = ..., domain_count: _Optional[int] = ..., subscription_years: _Optional[int] = ..., hosting: bool = ...) -> None: ...

class CreateOrderResponse(_message.Message):
    __slots__ = ["order"]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ["order_id"]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class GetOrderResponse(_message.Message):
    __slots__ = ["order"]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "status"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: OrderStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ["next_page_token", "orders"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    def __init__(self, orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListProductsRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListProductsResponse(_message.Message):
    __slots__ = ["products"]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    products: _containers.RepeatedCompositeFieldContainer[Product]
    def __init__(self, products: _Optional[_Iterable[_Union[Product, _Mapping]]] = ...) -> None: ...

class Money(_message.Message):
    __slots__ = ["amount_minor", "currency_code"]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    amount_minor: int
    currency_code: str
    def __init__(self, currency_code: _Optional[str] = ..., amount_minor: _Optional[int] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ["bundle_delivery_time", "bundle_id", "cancel_time", "certificate_ids", "create_time", "domain_count", "hosting", "order_id", "pay_time", "payment_reference", "product_id", "refund_message", "refund_status", "refund_time", "request_id", "status", "subscription_years", "total_price"]
    BUNDLE_DELIVERY_TIME_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TIME_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    HOSTING_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    PAY_TIME_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    REFUND_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REFUND_STATUS_FIELD_NUMBER: _ClassVar[int]
    REFUND_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_YEARS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PRICE_FIELD_NUMBER: _ClassVar[int]
    bundle_delivery_time: _timestamp_pb2.Timestamp
    bundle_id: str
    cancel_time: _timestamp_pb2.Timestamp
    certificate_ids: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    domain_count: int
    hosting: bool
    order_id: str
    pay_time: _timestamp_pb2.Timestamp
    payment_reference: str
    product_id: str
    refund_message: str
    refund_status: RefundStatus
    refund_time: _timestamp_pb2.Timestamp
    request_id: str
    status: OrderStatus
    subscription_years: int
    total_price: Money
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., product_id: _Optional[str] = ..., domain_count: _Optional[int] = ..., subscription_years: _Optional[int] = ..., hosting: bool = ..., total_price: _Optional[_Union[Money, _Mapping]] = ..., bundle_id: _Optional[str] = ..., certificate_ids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., payment_reference: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., pay_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., bundle_delivery_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., refund_status: _Optional[_Union[RefundStatus, str]] = ..., refund_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., refund_message: _Optional[str] = ...) -> None: ...

class PayOrderRequest(_message.Message):
    __slots__ = ["order_id", "payment_reference"]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    payment_reference: str
    def __init__(self, order_id: _Optional[str] = ..., payment_reference: _Optional[str] = ...) -> None: ...

class PayOrderResponse(_message.Message):
    __slots__ = ["order"]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ["brand", "display_name", "domain_type", "max_domains", "product_id", "validation_type", "yearly_price"]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    YEARLY_PRICE_FIELD_NUMBER: _ClassVar[int]
    brand: str
    display_name: str
    domain_type: DomainType
    max_domains: int
    product_id: str
    validation_type: ValidationType
    yearly_price: Money
    def __init__(self, product_id: _Optional[str] = ..., display_name: _Optional[str] = ..., brand: _Optional[str] = ..., validation_type: _Optional[_Union[ValidationType, str]] = ..., domain_type: _Optional[_Union[DomainType, str]] = ..., max_domains: _Optional[int] = ..., yearly_price: _Optional[_Union[Money, _Mapping]] = ...) -> None: ...

class RefundOrderRequest(_message.Message):
    __slots__ = ["order_id"]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class RefundOrderResponse(_message.Message):
    __slots__ = ["order"]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class ValidationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class DomainType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class RefundStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
