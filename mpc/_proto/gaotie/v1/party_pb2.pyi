from mpc._proto.gaotie.v1 import value_pb2 as _value_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("job_id", "sender", "receiver", "seq", "chunk_index", "last", "total_size", "payload", "abort", "abort_party")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    ABORT_PARTY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sender: str
    receiver: str
    seq: int
    chunk_index: int
    last: bool
    total_size: int
    payload: bytes
    abort: str
    abort_party: str
    def __init__(self, job_id: _Optional[str] = ..., sender: _Optional[str] = ..., receiver: _Optional[str] = ..., seq: _Optional[int] = ..., chunk_index: _Optional[int] = ..., last: _Optional[bool] = ..., total_size: _Optional[int] = ..., payload: _Optional[bytes] = ..., abort: _Optional[str] = ..., abort_party: _Optional[str] = ...) -> None: ...

class ExchangeReply(_message.Message):
    __slots__ = ("values_received",)
    VALUES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    values_received: int
    def __init__(self, values_received: _Optional[int] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("job_id", "protocol", "params", "requester", "parties", "timeout")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    protocol: str
    params: _value_pb2.Value
    requester: str
    parties: _containers.RepeatedScalarFieldContainer[str]
    timeout: float
    def __init__(self, job_id: _Optional[str] = ..., protocol: _Optional[str] = ..., params: _Optional[_Union[_value_pb2.Value, _Mapping]] = ..., requester: _Optional[str] = ..., parties: _Optional[_Iterable[str]] = ..., timeout: _Optional[float] = ...) -> None: ...

class JobReply(_message.Message):
    __slots__ = ("job_id", "state", "error", "failed_party")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FAILED_PARTY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: str
    error: str
    failed_party: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[str] = ..., error: _Optional[str] = ..., failed_party: _Optional[str] = ...) -> None: ...

class JobQuery(_message.Message):
    __slots__ = ("job_id", "reason", "failed_party", "omit_result")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FAILED_PARTY_FIELD_NUMBER: _ClassVar[int]
    OMIT_RESULT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    failed_party: str
    omit_result: bool
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ..., failed_party: _Optional[str] = ..., omit_result: _Optional[bool] = ...) -> None: ...

class ResultRequest(_message.Message):
    __slots__ = ("job_id", "max_chunk_bytes", "accept_files")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FILES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    max_chunk_bytes: int
    accept_files: bool
    def __init__(self, job_id: _Optional[str] = ..., max_chunk_bytes: _Optional[int] = ..., accept_files: _Optional[bool] = ...) -> None: ...

class ResultChunk(_message.Message):
    __slots__ = ("job_id", "total_size", "chunk_index", "last", "payload", "format")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    total_size: int
    chunk_index: int
    last: bool
    payload: bytes
    format: str
    def __init__(self, job_id: _Optional[str] = ..., total_size: _Optional[int] = ..., chunk_index: _Optional[int] = ..., last: _Optional[bool] = ..., payload: _Optional[bytes] = ..., format: _Optional[str] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "state", "error", "protocol", "progress", "result", "phase", "done", "total", "unit", "failed_party")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    FAILED_PARTY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: str
    error: str
    protocol: str
    progress: float
    result: _value_pb2.Value
    phase: str
    done: int
    total: int
    unit: str
    failed_party: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[str] = ..., error: _Optional[str] = ..., protocol: _Optional[str] = ..., progress: _Optional[float] = ..., result: _Optional[_Union[_value_pb2.Value, _Mapping]] = ..., phase: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., unit: _Optional[str] = ..., failed_party: _Optional[str] = ...) -> None: ...

class DatasetsRequest(_message.Message):
    __slots__ = ("party",)
    PARTY_FIELD_NUMBER: _ClassVar[int]
    party: str
    def __init__(self, party: _Optional[str] = ...) -> None: ...

class DatasetsReply(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _value_pb2.Value
    def __init__(self, datasets: _Optional[_Union[_value_pb2.Value, _Mapping]] = ...) -> None: ...
