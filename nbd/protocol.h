/* SPDX-License-Identifier: MIT */
/*
 * The NBD wire protocol: magics, option/command/flag/error numbers and the
 * packed big-endian structures exchanged on the socket.  Values are those of
 * the NBD specification (NetworkBlockDevice/nbd doc/proto.md, and its
 * extension-ext-header branch for the extended headers).  Nothing here holds
 * state; structures are converted to host order only at the edge (be*toh
 * when parsing, htobe* when building).
 */
#ifndef AIOLOOP_NBD_PROTOCOL_H
#define AIOLOOP_NBD_PROTOCOL_H

#include <stdint.h>

#define NBD_PACKED __attribute__((packed))

/* Handshake. */
#define NBD_MAGIC 0x4e42444d41474943ull	     /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC 0x49484156454f5054ull /* "IHAVEOPT" */
#define NBD_REP_MAGIC 0x0003e889045565a9ull  /* option reply */

#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0) /* handshake flags (server) */
#define NBD_FLAG_NO_ZEROES (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0) /* client flags */
#define NBD_FLAG_C_NO_ZEROES (1u << 1)

/* Options. */
#define NBD_OPT_EXPORT_NAME 1
#define NBD_OPT_ABORT 2
#define NBD_OPT_LIST 3
#define NBD_OPT_PEEK_EXPORT 4 /* withdrawn */
#define NBD_OPT_STARTTLS 5
#define NBD_OPT_INFO 6
#define NBD_OPT_GO 7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT 10
#define NBD_OPT_EXTENDED_HEADERS 11

/* Option replies; errors have bit 31 set. */
#define NBD_REP_ACK 1
#define NBD_REP_SERVER 2
#define NBD_REP_INFO 3
#define NBD_REP_META_CONTEXT 4
#define NBD_REP_ERR_UNSUP 0x80000001u
#define NBD_REP_ERR_POLICY 0x80000002u
#define NBD_REP_ERR_INVALID 0x80000003u
#define NBD_REP_ERR_PLATFORM 0x80000004u
#define NBD_REP_ERR_TLS_REQD 0x80000005u
#define NBD_REP_ERR_UNKNOWN 0x80000006u
#define NBD_REP_ERR_SHUTDOWN 0x80000007u
#define NBD_REP_ERR_BLOCK_SIZE_REQD 0x80000008u
#define NBD_REP_ERR_TOO_BIG 0x80000009u
#define NBD_REP_ERR_EXT_HEADER_REQD 0x8000000au

/* Info types (NBD_REP_INFO payload starts with one). */
#define NBD_INFO_EXPORT 0
#define NBD_INFO_NAME 1
#define NBD_INFO_DESCRIPTION 2
#define NBD_INFO_BLOCK_SIZE 3

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS (1u << 0)
#define NBD_FLAG_READ_ONLY (1u << 1)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_ROTATIONAL (1u << 4)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)
#define NBD_FLAG_SEND_RESIZE (1u << 9)
#define NBD_FLAG_SEND_CACHE (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1u << 11)
#define NBD_FLAG_BLOCK_STATUS_PAYLOAD (1u << 12)

/* Transmission. */
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_EXT_REQUEST_MAGIC 0x21e41c71u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu
#define NBD_EXT_REPLY_MAGIC 0x6e8a278cu

#define NBD_CMD_READ 0
#define NBD_CMD_WRITE 1
#define NBD_CMD_DISC 2
#define NBD_CMD_FLUSH 3
#define NBD_CMD_TRIM 4
#define NBD_CMD_CACHE 5
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7

#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAG_DF (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)
#define NBD_CMD_FLAG_PAYLOAD_LEN (1u << 5)

#define NBD_REPLY_FLAG_DONE (1u << 0)

#define NBD_REPLY_TYPE_NONE 0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT 6
#define NBD_REPLY_TYPE_ERROR 0x8001
#define NBD_REPLY_TYPE_ERROR_OFFSET 0x8002

/* Error values on the wire (not the host's errno numbers). */
#define NBD_EPERM 1
#define NBD_EIO 5
#define NBD_ENOMEM 12
#define NBD_EINVAL 22
#define NBD_ENOSPC 28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP 95
#define NBD_ESHUTDOWN 108

/* base:allocation */
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* Limits. */
#define NBD_MAX_STRING 4096	    /* names, descriptions */
#define NBD_MAX_PAYLOAD (64u << 20) /* largest READ/WRITE served */

/* Wire structures (big-endian). */

/* A lone big-endian field inside variable-length option data or an option
 * reply (a name length, a count, an info type, a context id): read and
 * written in place through these, with be*toh/htobe* like the rest. */
struct nbd_be16 {
	uint16_t v;
} NBD_PACKED;

struct nbd_be32 {
	uint32_t v;
} NBD_PACKED;

struct nbd_greeting {
	uint64_t magic;	     /* NBD_MAGIC */
	uint64_t opts_magic; /* NBD_OPTS_MAGIC */
	uint16_t flags;	     /* NBD_FLAG_FIXED_NEWSTYLE | NO_ZEROES */
} NBD_PACKED;

struct nbd_option {
	uint64_t magic; /* NBD_OPTS_MAGIC */
	uint32_t option;
	uint32_t len; /* data that follows */
} NBD_PACKED;

struct nbd_option_reply {
	uint64_t magic;	 /* NBD_REP_MAGIC */
	uint32_t option; /* echo */
	uint32_t type;	 /* NBD_REP_* */
	uint32_t len;
} NBD_PACKED;

/* Answer to NBD_OPT_EXPORT_NAME (then 124 zeroes unless NO_ZEROES). */
struct nbd_export_name_reply {
	uint64_t size;
	uint16_t flags;
} NBD_PACKED;

struct nbd_info_export {
	uint16_t info; /* NBD_INFO_EXPORT */
	uint64_t size;
	uint16_t flags;
} NBD_PACKED;

struct nbd_info_block_size {
	uint16_t info; /* NBD_INFO_BLOCK_SIZE */
	uint32_t minimum;
	uint32_t preferred;
	uint32_t maximum;
} NBD_PACKED;

struct nbd_request {
	uint32_t magic; /* NBD_REQUEST_MAGIC */
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t len;
} NBD_PACKED;

struct nbd_ext_request {
	uint32_t magic; /* NBD_EXT_REQUEST_MAGIC */
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint64_t len;
} NBD_PACKED;

struct nbd_simple_reply {
	uint32_t magic; /* NBD_SIMPLE_REPLY_MAGIC */
	uint32_t error;
	uint64_t cookie;
} NBD_PACKED;

struct nbd_structured_reply {
	uint32_t magic; /* NBD_STRUCTURED_REPLY_MAGIC */
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint32_t len;
} NBD_PACKED;

struct nbd_ext_reply {
	uint32_t magic; /* NBD_EXT_REPLY_MAGIC */
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset; /* the request's offset */
	uint64_t len;
} NBD_PACKED;

struct nbd_chunk_offset_hole {
	uint64_t offset;
	uint32_t len;
} NBD_PACKED;

struct nbd_chunk_offset_data {
	uint64_t offset; /* followed by the data */
} NBD_PACKED;

struct nbd_chunk_error {
	uint32_t error;
	uint16_t msg_len; /* followed by the message */
} NBD_PACKED;

/* NBD_REPLY_TYPE_BLOCK_STATUS payload, then descriptors. */
struct nbd_chunk_block_status {
	uint32_t context_id;
} NBD_PACKED;

/* NBD_REPLY_TYPE_BLOCK_STATUS_EXT payload, then extended descriptors. */
struct nbd_chunk_block_status_ext {
	uint32_t context_id;
	uint32_t count;
} NBD_PACKED;

struct nbd_block_descriptor {
	uint32_t len;
	uint32_t flags;
} NBD_PACKED;

struct nbd_block_descriptor_ext {
	uint64_t len;
	uint64_t flags;
} NBD_PACKED;

_Static_assert(sizeof(struct nbd_greeting) == 18, "greeting");
_Static_assert(sizeof(struct nbd_option) == 16, "option header");
_Static_assert(sizeof(struct nbd_option_reply) == 20, "option reply header");
_Static_assert(sizeof(struct nbd_export_name_reply) == 10, "export name reply");
_Static_assert(sizeof(struct nbd_info_export) == 12, "INFO_EXPORT");
_Static_assert(sizeof(struct nbd_info_block_size) == 14, "INFO_BLOCK_SIZE");
_Static_assert(sizeof(struct nbd_request) == 28, "request");
_Static_assert(sizeof(struct nbd_ext_request) == 32, "extended request");
_Static_assert(sizeof(struct nbd_simple_reply) == 16, "simple reply");
_Static_assert(sizeof(struct nbd_structured_reply) == 20, "structured reply");
_Static_assert(sizeof(struct nbd_ext_reply) == 32, "extended reply");
_Static_assert(sizeof(struct nbd_chunk_offset_hole) == 12, "OFFSET_HOLE payload");
_Static_assert(sizeof(struct nbd_chunk_offset_data) == 8, "OFFSET_DATA payload head");
_Static_assert(sizeof(struct nbd_chunk_error) == 6, "ERROR payload head");
_Static_assert(sizeof(struct nbd_block_descriptor) == 8, "block descriptor");
_Static_assert(sizeof(struct nbd_block_descriptor_ext) == 16, "extended block descriptor");

#endif
