/** RoomService and AgentDispatchService handlers (livekit-server pkg/service/roomservice.go, agent_dispatch_service.go). */
import {
  CreateAgentDispatchRequest,
  CreateRoomRequest,
  DeleteAgentDispatchRequest,
  DeleteRoomRequest,
  DeleteRoomResponse,
  ListAgentDispatchRequest,
  ListAgentDispatchResponse,
  ListParticipantsRequest,
  ListParticipantsResponse,
  ListRoomsRequest,
  ListRoomsResponse,
  MoveParticipantRequest,
  MoveParticipantResponse,
  RemoveParticipantResponse,
  Room,
  RoomParticipantIdentity,
  UpdateParticipantRequest,
} from '@livekit/protocol';
import {
  ensureAdminPermission,
  ensureCreatePermission,
  ensureDestRoomPermission,
  ensureListPermission,
} from './auth.js';
import { dispatchProto, participantProto, type RoomState } from './roomState.js';
import { LIVEKIT_MESSAGES, psrpcError, twirpError } from './twirpErrors.js';
import { rpc, type TwirpMethod } from './twirpServer.js';

/**
 * livekit-server's default limits (pkg/config/config.go `limit.max_metadata_size`, `max_attributes_size`), checked by
 * CreateDispatch (agent_dispatch_service.go `CheckMetadataSize`, `CheckAttributesSize`) in bytes: Go's `len` of the
 * UTF-8 string, and of every attribute key plus value.
 */
export const LIVEKIT_MAX_METADATA_BYTES = 512 * 1024;
export const LIVEKIT_MAX_ATTRIBUTES_BYTES = 64 * 1024;

function attributesBytes(attributes: Readonly<Record<string, string>>): number {
  let total = 0;
  for (const [key, value] of Object.entries(attributes)) total += Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value, 'utf8');
  return total;
}

function roomNotFound() {
  return psrpcError('not_found', LIVEKIT_MESSAGES.roomNotFound);
}

function participantNotFound() {
  return psrpcError('not_found', LIVEKIT_MESSAGES.participantNotFound);
}

export function roomServiceMethods(rooms: RoomState): Record<string, TwirpMethod> {
  return {
    CreateRoom: rpc(CreateRoomRequest, (req, ctx) => {
      ensureCreatePermission(ctx.grants);
      if (req.name === '') throw psrpcError('invalid_argument', 'no room name');
      rooms.ensureRoom(req.name, {
        metadata: req.metadata,
        emptyTimeout: req.emptyTimeout,
        departureTimeout: req.departureTimeout,
        maxParticipants: req.maxParticipants,
      });
      return rooms.roomProto(req.name) ?? new Room({ name: req.name });
    }),
    ListRooms: rpc(ListRoomsRequest, (req, ctx) => {
      ensureListPermission(ctx.grants);
      const names = req.names.length > 0 ? req.names.filter((name) => rooms.has(name)) : rooms.roomNames();
      const list = names.map((name) => rooms.roomProto(name)).filter((room): room is Room => room !== undefined);
      return new ListRoomsResponse({ rooms: list });
    }),
    DeleteRoom: rpc(DeleteRoomRequest, (req, ctx) => {
      ensureCreatePermission(ctx.grants);
      if (!rooms.deleteRoom(req.room)) throw roomNotFound();
      return new DeleteRoomResponse();
    }),
    ListParticipants: rpc(ListParticipantsRequest, (req, ctx) => {
      ensureAdminPermission(ctx.grants, req.room);
      // LiveKit's store lists nothing (no error) for a room it does not know.
      return new ListParticipantsResponse({ participants: rooms.participants(req.room).map(participantProto) });
    }),
    GetParticipant: rpc(RoomParticipantIdentity, (req, ctx) => {
      ensureAdminPermission(ctx.grants, req.room);
      const participant = rooms.getParticipant(req.room, req.identity);
      if (!participant) throw participantNotFound();
      return participantProto(participant);
    }),
    RemoveParticipant: rpc(RoomParticipantIdentity, (req, ctx) => {
      ensureAdminPermission(ctx.grants, req.room);
      if (!rooms.removeParticipant(req.room, req.identity, 'PARTICIPANT_REMOVED')) throw participantNotFound();
      return new RemoveParticipantResponse();
    }),
    MoveParticipant: rpc(MoveParticipantRequest, (req, ctx) => {
      ensureDestRoomPermission(ctx.grants, req.room, req.destinationRoom);
      if (req.room === req.destinationRoom) throw twirpError('invalid_argument', LIVEKIT_MESSAGES.sameRoom);
      if (!rooms.moveParticipant(req.room, req.identity, req.destinationRoom)) throw participantNotFound();
      return new MoveParticipantResponse();
    }),
    UpdateParticipant: rpc(UpdateParticipantRequest, (req, ctx) => {
      ensureAdminPermission(ctx.grants, req.room);
      const participant = rooms.getParticipant(req.room, req.identity);
      if (!participant) throw participantNotFound();
      if (req.metadata !== '') participant.metadata = req.metadata;
      if (req.name !== '') participant.name = req.name;
      rooms.updateAttributes(participant, req.attributes);
      return participantProto(participant);
    }),
  };
}

export function agentDispatchMethods(rooms: RoomState): Record<string, TwirpMethod> {
  return {
    CreateDispatch: rpc(CreateAgentDispatchRequest, (req, ctx) => {
      ensureAdminPermission(ctx.grants, req.room);
      // Both are psrpc errors returned by the Twirp handler (ErrMetadataExceedsLimits, ErrAttributeExceedsLimits).
      if (Buffer.byteLength(req.metadata, 'utf8') > LIVEKIT_MAX_METADATA_BYTES) {
        throw psrpcError('invalid_argument', LIVEKIT_MESSAGES.metadataExceedsLimits);
      }
      if (attributesBytes(req.attributes) > LIVEKIT_MAX_ATTRIBUTES_BYTES) {
        throw psrpcError('invalid_argument', LIVEKIT_MESSAGES.attributesExceedLimits);
      }
      // LiveKit auto-creates the room, then records the dispatch there.
      return dispatchProto(rooms.addDispatch(req.room, req.agentName, req.metadata));
    }),
    ListDispatch: rpc(ListAgentDispatchRequest, (req, ctx) => {
      ensureAdminPermission(ctx.grants, req.room);
      const dispatches = rooms.listDispatches(req.room);
      if (!dispatches) throw roomNotFound();
      const selected = req.dispatchId === '' ? dispatches : dispatches.filter((d) => d.id === req.dispatchId);
      return new ListAgentDispatchResponse({ agentDispatches: selected.map(dispatchProto) });
    }),
    DeleteDispatch: rpc(DeleteAgentDispatchRequest, (req, ctx) => {
      ensureAdminPermission(ctx.grants, req.room);
      if (!rooms.has(req.room)) throw roomNotFound();
      const dispatch = rooms.deleteDispatch(req.room, req.dispatchId);
      if (!dispatch) throw psrpcError('not_found', LIVEKIT_MESSAGES.dispatchNotFound);
      return dispatchProto(dispatch);
    }),
  };
}
