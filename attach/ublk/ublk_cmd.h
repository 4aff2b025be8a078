/* SPDX-License-Identifier: MIT */
/*
 * The ublk user-kernel interface (include/uapi/linux/ublk_cmd.h), written
 * out here because Debian 12's linux-libc-dev carries the 6.1 header, which
 * lacks the ioctl command encoding (6.4), GET_FEATURES (6.5) and the later
 * feature bits (to 6.19's SAFE_STOP_DEV).  Never include <linux/ublk_cmd.h> next to this file.
 *
 * Control commands go to /dev/ublk-control as IORING_OP_URING_CMD on a ring
 * set up with IORING_SETUP_SQE128 (struct ublksrv_ctrl_cmd is 32 bytes, in
 * sqe->cmd).  I/O commands go to /dev/ublkcN (struct ublksrv_io_cmd, 16
 * bytes).  6.1-6.3 take the plain opcodes (UBLK_CMD_*, UBLK_IO_*); 6.4+
 * take the _IOWR('u', nr, ...) encodings and, when built with
 * CONFIG_BLKDEV_UBLK_LEGACY_OPCODES, the plain ones too.
 */
#ifndef AIOLOOP_UBLK_CMD_H
#define AIOLOOP_UBLK_CMD_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Control command numbers (the legacy opcode is the number itself). */
#define UBLK_CMD_GET_QUEUE_AFFINITY	0x01
#define UBLK_CMD_GET_DEV_INFO		0x02
#define UBLK_CMD_ADD_DEV		0x04
#define UBLK_CMD_DEL_DEV		0x05
#define UBLK_CMD_START_DEV		0x06
#define UBLK_CMD_STOP_DEV		0x07
#define UBLK_CMD_SET_PARAMS		0x08
#define UBLK_CMD_GET_PARAMS		0x09
#define UBLK_CMD_START_USER_RECOVERY	0x10
#define UBLK_CMD_END_USER_RECOVERY	0x11
#define UBLK_CMD_GET_DEV_INFO2		0x12
#define UBLK_CMD_GET_FEATURES		0x13	/* ioctl encoding only, 6.5+ */
#define UBLK_CMD_DEL_DEV_ASYNC		0x14	/* 6.9+ */
#define UBLK_CMD_UPDATE_SIZE		0x15	/* 6.16+, UBLK_F_UPDATE_SIZE */
#define UBLK_CMD_QUIESCE_DEV		0x16	/* 6.16+, UBLK_F_QUIESCE */

/* I/O command numbers. */
#define UBLK_IO_FETCH_REQ		0x20
#define UBLK_IO_COMMIT_AND_FETCH_REQ	0x21
#define UBLK_IO_NEED_GET_DATA		0x22
#define UBLK_IO_REGISTER_IO_BUF		0x23	/* 6.15+, ioctl encoding only */
#define UBLK_IO_UNREGISTER_IO_BUF	0x24

struct ublksrv_ctrl_cmd {
	__u32 dev_id;		/* target device; (__u32)-1 on ADD_DEV: any free id */
	__u16 queue_id;		/* (__u16)-1 unless the command is per queue */
	__u16 len;		/* length of the buffer at addr */
	__u64 addr;		/* command-specific in/out buffer */
	__u64 data[1];		/* inline argument (START_DEV: daemon pid) */
	__u16 dev_path_len;	/* GET_DEV_INFO2 / unprivileged devices */
	__u16 pad;
	__u32 reserved;
};

/* Whether an opcode is encoded as an ioctl number of the given size. */
#define UBLK_CTRL_IOR(nr)	_IOR('u', (nr), struct ublksrv_ctrl_cmd)
#define UBLK_CTRL_IOWR(nr)	_IOWR('u', (nr), struct ublksrv_ctrl_cmd)

#define UBLK_U_CMD_GET_DEV_INFO		UBLK_CTRL_IOR(UBLK_CMD_GET_DEV_INFO)
#define UBLK_U_CMD_ADD_DEV		UBLK_CTRL_IOWR(UBLK_CMD_ADD_DEV)
#define UBLK_U_CMD_DEL_DEV		UBLK_CTRL_IOWR(UBLK_CMD_DEL_DEV)
#define UBLK_U_CMD_START_DEV		UBLK_CTRL_IOWR(UBLK_CMD_START_DEV)
#define UBLK_U_CMD_STOP_DEV		UBLK_CTRL_IOWR(UBLK_CMD_STOP_DEV)
#define UBLK_U_CMD_SET_PARAMS		UBLK_CTRL_IOWR(UBLK_CMD_SET_PARAMS)
#define UBLK_U_CMD_GET_PARAMS		UBLK_CTRL_IOR(UBLK_CMD_GET_PARAMS)
#define UBLK_U_CMD_START_USER_RECOVERY	UBLK_CTRL_IOWR(UBLK_CMD_START_USER_RECOVERY)
#define UBLK_U_CMD_END_USER_RECOVERY	UBLK_CTRL_IOWR(UBLK_CMD_END_USER_RECOVERY)
#define UBLK_U_CMD_GET_DEV_INFO2	UBLK_CTRL_IOR(UBLK_CMD_GET_DEV_INFO2)
#define UBLK_U_CMD_GET_FEATURES		UBLK_CTRL_IOR(UBLK_CMD_GET_FEATURES)
#define UBLK_U_CMD_DEL_DEV_ASYNC	UBLK_CTRL_IOR(UBLK_CMD_DEL_DEV_ASYNC)
#define UBLK_U_CMD_UPDATE_SIZE		UBLK_CTRL_IOWR(UBLK_CMD_UPDATE_SIZE)
#define UBLK_U_CMD_QUIESCE_DEV		UBLK_CTRL_IOWR(UBLK_CMD_QUIESCE_DEV)

struct ublksrv_io_cmd {
	__u16 q_id;
	__u16 tag;
	__s32 result;		/* COMMIT: bytes done or -errno */
	__u64 addr;		/* copy mode: the tag's buffer; REGISTER_IO_BUF: the
				 * buffer-table index */
};

/*
 * UBLK_F_AUTO_BUF_REG: FETCH and COMMIT_AND_FETCH carry, in sqe->addr (not
 * in the command), where the kernel registers the next request's pages in
 * the ring's buffer table: bits 0-15 the index, 16-23 flags, the rest zero.
 * With the fallback flag a failed registration still delivers the request,
 * marked UBLK_IO_F_NEED_REG_BUF, instead of failing it.
 */
#define UBLK_AUTO_BUF_REG_FALLBACK	(1U << 0)

static inline __u64 ublk_auto_buf_reg_addr(__u16 index, __u8 flags)
{
	return (__u64)index | (__u64)flags << 16;
}

/* UBLK_F_USER_COPY: a request's data is read and written with pread and
 * pwrite on /dev/ublkcN at this offset (+ the byte offset inside it). */
#define UBLKSRV_IO_BUF_OFFSET	0x80000000ULL
#define UBLK_TAG_OFF		25	/* a buffer is at most 32 MiB */
#define UBLK_QID_OFF		41	/* 16 tag bits */

static inline __u64 ublk_user_copy_pos(__u16 q_id, __u16 tag)
{
	return UBLKSRV_IO_BUF_OFFSET + ((__u64)q_id << UBLK_QID_OFF) +
	       ((__u64)tag << UBLK_TAG_OFF);
}

#define UBLK_U_IO_FETCH_REQ		_IOWR('u', UBLK_IO_FETCH_REQ, struct ublksrv_io_cmd)
#define UBLK_U_IO_COMMIT_AND_FETCH_REQ	_IOWR('u', UBLK_IO_COMMIT_AND_FETCH_REQ, struct ublksrv_io_cmd)
#define UBLK_U_IO_REGISTER_IO_BUF	_IOWR('u', UBLK_IO_REGISTER_IO_BUF, struct ublksrv_io_cmd)
#define UBLK_U_IO_UNREGISTER_IO_BUF	_IOWR('u', UBLK_IO_UNREGISTER_IO_BUF, struct ublksrv_io_cmd)

/* Results of a FETCH / COMMIT_AND_FETCH completion. */
#define UBLK_IO_RES_OK			0
#define UBLK_IO_RES_NEED_GET_DATA	1
#define UBLK_IO_RES_ABORT		(-19)	/* -ENODEV: the queue is going away */

#define UBLK_FEATURES_LEN	8
#define UBLK_MAX_QUEUE_DEPTH	4096

/* Feature flags (ublksrv_ctrl_dev_info.flags; GET_FEATURES). */
#define UBLK_F_SUPPORT_ZERO_COPY	(1ULL << 0)
#define UBLK_F_URING_CMD_COMP_IN_TASK	(1ULL << 1)
#define UBLK_F_NEED_GET_DATA		(1ULL << 2)
#define UBLK_F_USER_RECOVERY		(1ULL << 3)	/* 6.1 */
#define UBLK_F_USER_RECOVERY_REISSUE	(1ULL << 4)	/* 6.1 */
#define UBLK_F_UNPRIVILEGED_DEV		(1ULL << 5)	/* 6.3 */
#define UBLK_F_CMD_IOCTL_ENCODE		(1ULL << 6)	/* 6.4 */
#define UBLK_F_USER_COPY		(1ULL << 7)	/* 6.5 */
#define UBLK_F_ZONED			(1ULL << 8)	/* 6.6 */
#define UBLK_F_USER_RECOVERY_FAIL_IO	(1ULL << 9)	/* 6.13 */
#define UBLK_F_UPDATE_SIZE		(1ULL << 10)	/* 6.16 */
#define UBLK_F_AUTO_BUF_REG		(1ULL << 11)	/* 6.16 */
#define UBLK_F_QUIESCE			(1ULL << 12)	/* 6.16 */
#define UBLK_F_PER_IO_DAEMON		(1ULL << 13)	/* 6.16 */
#define UBLK_F_BUF_REG_OFF_DAEMON	(1ULL << 14)	/* 6.17 */
#define UBLK_F_SAFE_STOP_DEV		(1ULL << 17)	/* 6.19/7.0 */
#define UBLK_F_NO_AUTO_PART_SCAN	(1ULL << 18)	/* 7.0 */

/* Device states. */
#define UBLK_S_DEV_DEAD		0
#define UBLK_S_DEV_LIVE		1
#define UBLK_S_DEV_QUIESCED	2
#define UBLK_S_DEV_FAIL_IO	3

struct ublksrv_ctrl_dev_info {
	__u16 nr_hw_queues;
	__u16 queue_depth;
	__u16 state;
	__u16 pad0;
	__u32 max_io_buf_bytes;
	__u32 dev_id;
	__s32 ublksrv_pid;
	__u32 pad1;
	__u64 flags;
	__u64 ublksrv_flags;	/* ours, not interpreted by the kernel */
	__u32 owner_uid;
	__u32 owner_gid;
	__u64 reserved1;
	__u64 reserved2;
};

/* Request ops (ublksrv_io_desc.op_flags bits 0-7) and flags (8-31). */
#define UBLK_IO_OP_READ		0
#define UBLK_IO_OP_WRITE	1
#define UBLK_IO_OP_FLUSH	2
#define UBLK_IO_OP_DISCARD	3
#define UBLK_IO_OP_WRITE_SAME	4
#define UBLK_IO_OP_WRITE_ZEROES	5

#define UBLK_IO_F_FAILFAST_DEV		(1U << 8)
#define UBLK_IO_F_FAILFAST_TRANSPORT	(1U << 9)
#define UBLK_IO_F_FAILFAST_DRIVER	(1U << 10)
#define UBLK_IO_F_META			(1U << 11)
#define UBLK_IO_F_FUA			(1U << 13)
#define UBLK_IO_F_NOUNMAP		(1U << 15)
#define UBLK_IO_F_SWAP			(1U << 16)
#define UBLK_IO_F_NEED_REG_BUF		(1U << 17)	/* auto registration failed */

/* One per tag, in a read-only mmap of /dev/ublkcN at ublk_desc_offset(q). */
struct ublksrv_io_desc {
	__u32 op_flags;
	__u32 nr_sectors;	/* 512-byte sectors */
	__u64 start_sector;	/* 512-byte sectors */
	__u64 addr;		/* the buffer given with FETCH (copy mode) */
};

#define UBLKSRV_CMD_BUF_OFFSET	0

struct ublk_param_basic {
#define UBLK_ATTR_READ_ONLY		(1 << 0)
#define UBLK_ATTR_ROTATIONAL		(1 << 1)
#define UBLK_ATTR_VOLATILE_CACHE	(1 << 2)
#define UBLK_ATTR_FUA			(1 << 3)
	__u32 attrs;
	__u8 logical_bs_shift;
	__u8 physical_bs_shift;
	__u8 io_opt_shift;
	__u8 io_min_shift;
	__u32 max_sectors;
	__u32 chunk_sectors;
	__u64 dev_sectors;
	__u64 virt_boundary_mask;
};

struct ublk_param_discard {
	__u32 discard_alignment;
	__u32 discard_granularity;
	__u32 max_discard_sectors;
	__u32 max_write_zeroes_sectors;
	__u16 max_discard_segments;
	__u16 reserved0;
};

struct ublk_param_devt {	/* read-only, GET_PARAMS */
	__u32 char_major;
	__u32 char_minor;
	__u32 disk_major;
	__u32 disk_minor;
};

struct ublk_param_zoned {	/* not used; keeps the layout */
	__u32 max_open_zones;
	__u32 max_active_zones;
	__u32 max_zone_append_sectors;
	__u8 reserved[20];
};

struct ublk_param_dma_align {	/* 6.15: buffer alignment mask (2^n - 1) */
	__u32 alignment;
	__u8 pad[4];
};

/*
 * Only the parameter types this program sets or reads.  The kernel clamps
 * len to the struct it knows and masks types, so a newer layout would be
 * harmless; this one is the 6.15+ prefix (6.1 knows basic + discard, 6.2
 * devt, 6.6 zoned).
 */
struct ublk_params {
	__u32 len;
#define UBLK_PARAM_TYPE_BASIC	(1 << 0)
#define UBLK_PARAM_TYPE_DISCARD	(1 << 1)
#define UBLK_PARAM_TYPE_DEVT	(1 << 2)
#define UBLK_PARAM_TYPE_DMA_ALIGN (1 << 4)
	__u32 types;
	struct ublk_param_basic basic;
	struct ublk_param_discard discard;
	struct ublk_param_devt devt;
	struct ublk_param_zoned zoned;
	struct ublk_param_dma_align dma;
};

#endif
