"""`grpc.reflection.v1alpha.ServerReflection`: lets grpcurl, grpcui and Postman list the
services and read their definitions without the .proto files.

Own implementation (grpcio-reflection pins a newer protobuf than this project supports): files
come from the default descriptor pool, where the generated modules registered them, each sent
with the files it imports. The protos define no extensions, so extension queries find none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor

from service.grpc.generated import reflection_pb2 as pb
from service.grpc.generated.reflection_pb2_grpc import ServerReflectionServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ServerReflection"].full_name
Context = grpc.aio.ServicerContext


class ReflectionService(ServerReflectionServicer):
    """Answers each reflection request of the stream about `service_names`."""

    def __init__(self, service_names: Sequence[str]) -> None:
        self._service_names = list(service_names)
        self._pool = descriptor_pool.Default()

    async def ServerReflectionInfo(
        self, requests: AsyncIterator[pb.ServerReflectionRequest], context: Context
    ) -> AsyncIterator[pb.ServerReflectionResponse]:
        async for request in requests:
            yield self._answer(request)

    def _answer(self, request: pb.ServerReflectionRequest) -> pb.ServerReflectionResponse:
        response = pb.ServerReflectionResponse(valid_host=request.host, original_request=request)
        asked = request.WhichOneof("message_request")
        try:
            if asked == "list_services":
                services = [pb.ServiceResponse(name=name) for name in self._service_names]
                response.list_services_response.service.extend(services)
            elif asked == "file_by_filename":
                self._send_files(response, self._pool.FindFileByName(request.file_by_filename))
            elif asked == "file_containing_symbol":
                symbol = request.file_containing_symbol
                self._send_files(response, self._pool.FindFileContainingSymbol(symbol))
            elif asked == "all_extension_numbers_of_type":
                name = request.all_extension_numbers_of_type
                self._pool.FindMessageTypeByName(name)  # KeyError when there is no such type
                response.all_extension_numbers_response.base_type_name = name
            elif asked == "file_containing_extension":
                extension = request.file_containing_extension
                raise KeyError(
                    f"extension {extension.extension_number} of {extension.containing_type}"
                )
            else:
                response.error_response.error_code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
                response.error_response.error_message = "the request asks for nothing"
        except KeyError as missing:
            response.ClearField("message_response")
            response.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
            response.error_response.error_message = f"not found: {missing.args[0]}"
        return response

    @staticmethod
    def _send_files(response: pb.ServerReflectionResponse, file: FileDescriptor) -> None:
        """`file`, then every file it imports (directly or not), each once."""
        serialized = [each.serialized_pb for each in _with_imports(file, set())]
        response.file_descriptor_response.file_descriptor_proto.extend(serialized)


def _with_imports(file: FileDescriptor, seen: set[str]) -> Iterator[FileDescriptor]:
    if file.name in seen:
        return
    seen.add(file.name)
    yield file
    for dependency in file.dependencies:
        yield from _with_imports(dependency, seen)
