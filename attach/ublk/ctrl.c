// SPDX-License-Identifier: MIT
/*
 * ublk control commands: IORING_OP_URING_CMD on /dev/ublk-control through
 * a small ring of its own, set up with IORING_SETUP_SQE128 because the
 * command (struct ublksrv_ctrl_cmd, 32 bytes) does not fit a 64-byte SQE.
 *
 * Encoding: kernels 6.1-6.3 take only the plain opcodes, 6.4+ the ioctl
 * encoding (and the plain ones only with CONFIG_BLKDEV_UBLK_LEGACY_OPCODES).
 * Every command is tried with the encoding last known to work, ioctl first;
 * -EOPNOTSUPP or -EINVAL from the other form switches for good.
 *
 * Thread model: a struct ublk_ctrl belongs to one thread (the control
 * thread of the daemon, or the CLI); commands are synchronous.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "ublk.h"

struct ublk_ctrl {
	int fd;
	struct io_uring ring;
	int encoding; /* 1 ioctl, 0 legacy, -1 unknown yet */
};

int ublk_ctrl_open(struct ublk_ctrl **out)
{
	struct ublk_ctrl *c;
	int ret;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->encoding = -1;
	c->fd = open(UBLK_CONTROL_PATH, O_RDWR | O_CLOEXEC);
	if (c->fd < 0) {
		ret = -errno;
		goto err_free;
	}
	ret = io_uring_queue_init(4, &c->ring, IORING_SETUP_SQE128);
	if (ret < 0) {
		aiol_err("io_uring with 128-byte SQEs for ublk control: %s", strerror(-ret));
		goto err_close;
	}
	*out = c;
	return 0;

err_close:
	close(c->fd);
err_free:
	free(c);
	return ret;
}

void ublk_ctrl_close(struct ublk_ctrl *c)
{
	if (!c)
		return;
	io_uring_queue_exit(&c->ring);
	close(c->fd);
	free(c);
}

bool ublk_ctrl_ioctl_encode(const struct ublk_ctrl *c)
{
	return c->encoding != 0;
}

static unsigned int ctrl_op(unsigned int nr, bool ioctl, bool write)
{
	if (!ioctl)
		return nr;
	return write ? UBLK_CTRL_IOWR(nr) : UBLK_CTRL_IOR(nr);
}

/* Issue one command with one encoding; returns the CQE's res. */
static int ctrl_issue(struct ublk_ctrl *c, unsigned int op, const struct ublksrv_ctrl_cmd *cmd)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int ret;

	sqe = io_uring_get_sqe(&c->ring);
	if (!sqe)
		return -EBUSY;
	memset(sqe, 0, 128);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = c->fd;
	sqe->cmd_op = op;
	memcpy(sqe->cmd, cmd, sizeof(*cmd));
	ret = io_uring_submit(&c->ring);
	if (ret < 0)
		return ret;
	do {
		ret = io_uring_wait_cqe(&c->ring, &cqe);
	} while (ret == -EINTR);
	if (ret < 0)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(&c->ring, cqe);
	return ret;
}

/*
 * nr with the known encoding, or ioctl then legacy while unknown.  6.1-6.3
 * answer an ioctl-encoded command -EOPNOTSUPP from their switch, except
 * ADD_DEV, which they do not recognise before looking up dev_id: -ENODEV.
 */
static int ctrl_cmd(struct ublk_ctrl *c, unsigned int nr, bool write, struct ublksrv_ctrl_cmd *cmd)
{
	int ret;

	if (c->encoding >= 0)
		return ctrl_issue(c, ctrl_op(nr, c->encoding, write), cmd);
	ret = ctrl_issue(c, ctrl_op(nr, true, write), cmd);
	if (ret != -EOPNOTSUPP && ret != -EINVAL && !(nr == UBLK_CMD_ADD_DEV && ret == -ENODEV)) {
		c->encoding = 1;
		return ret;
	}
	ret = ctrl_issue(c, nr, cmd);
	if (ret != -EOPNOTSUPP && ret != -EINVAL) {
		c->encoding = 0;
		aiol_debug("ublk: kernel takes legacy control opcodes");
	}
	return ret;
}

int ublk_ctrl_get_features(struct ublk_ctrl *c, uint64_t *features)
{
	struct ublksrv_ctrl_cmd cmd = {
	    .dev_id = (uint32_t)-1,
	    .queue_id = (uint16_t)-1,
	    .len = UBLK_FEATURES_LEN,
	    .addr = (uint64_t)(uintptr_t)features,
	};

	*features = 0;
	/* ioctl encoding only; older kernels answer -EOPNOTSUPP/-ENODEV/-EINVAL */
	return ctrl_issue(c, UBLK_U_CMD_GET_FEATURES, &cmd);
}

int ublk_ctrl_add_dev(struct ublk_ctrl *c, struct ublksrv_ctrl_dev_info *info)
{
	struct ublksrv_ctrl_cmd cmd = {
	    .dev_id = info->dev_id,
	    .queue_id = (uint16_t)-1,
	    .len = sizeof(*info),
	    .addr = (uint64_t)(uintptr_t)info,
	};
	int ret;

	ret = ctrl_cmd(c, UBLK_CMD_ADD_DEV, true, &cmd);
	if (ret == 0 && c->encoding == 1 && !(info->flags & UBLK_F_CMD_IOCTL_ENCODE))
		c->encoding = 0; /* not expected: the kernel says legacy */
	return ret;
}

int ublk_ctrl_get_info(struct ublk_ctrl *c, uint32_t dev_id, struct ublksrv_ctrl_dev_info *info)
{
	struct ublksrv_ctrl_cmd cmd = {
	    .dev_id = dev_id,
	    .queue_id = (uint16_t)-1,
	    .len = sizeof(*info),
	    .addr = (uint64_t)(uintptr_t)info,
	};

	memset(info, 0, sizeof(*info));
	return ctrl_cmd(c, UBLK_CMD_GET_DEV_INFO, false, &cmd);
}

int ublk_ctrl_set_params(struct ublk_ctrl *c, uint32_t dev_id, struct ublk_params *p)
{
	struct ublksrv_ctrl_cmd cmd = {
	    .dev_id = dev_id,
	    .queue_id = (uint16_t)-1,
	    .len = (uint16_t)p->len,
	    .addr = (uint64_t)(uintptr_t)p,
	};

	return ctrl_cmd(c, UBLK_CMD_SET_PARAMS, true, &cmd);
}

int ublk_ctrl_simple(struct ublk_ctrl *c, unsigned int nr, uint32_t dev_id, uint64_t data0)
{
	struct ublksrv_ctrl_cmd cmd = {
	    .dev_id = dev_id,
	    .queue_id = (uint16_t)-1,
	    .data = {data0},
	};

	return ctrl_cmd(c, nr, true, &cmd);
}
