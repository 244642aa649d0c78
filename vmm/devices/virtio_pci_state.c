/* virtio-pci transport state: what a driver programmed, for migration
 * and live update.  See virtio_pci.h. */
#include "devices/virtio_pci.h"

#include <errno.h>
#include <string.h>

static const struct tern_vmstate_field queue_fields[] = {
	TERN_VMS_FIELD_U16(struct virtio_pci_qstate, size, 0),
	TERN_VMS_FIELD_U16(struct virtio_pci_qstate, msix_vector, 0),
	TERN_VMS_FIELD_U16(struct virtio_pci_qstate, enable, 0),
	TERN_VMS_FIELD_U64(struct virtio_pci_qstate, desc, 0),
	TERN_VMS_FIELD_U64(struct virtio_pci_qstate, avail, 0),
	TERN_VMS_FIELD_U64(struct virtio_pci_qstate, used, 0),
	TERN_VMS_FIELD_STRUCT(struct virtio_pci_qstate, vq, &tern_vq_state_desc, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc queue_desc = {
	.name = "virtio-pci-queue",
	.size = sizeof(struct virtio_pci_qstate),
	.version = 1,
	.min_version = 1,
	.fields = queue_fields,
};

static const struct tern_vmstate_field fields[] = {
	TERN_VMS_FIELD_U64(struct virtio_pci_state, host_features, 0),
	TERN_VMS_FIELD_U64(struct virtio_pci_state, driver_features, 0),
	TERN_VMS_FIELD_U32(struct virtio_pci_state, dfselect, 0),
	TERN_VMS_FIELD_U32(struct virtio_pci_state, gfselect, 0),
	TERN_VMS_FIELD_U16(struct virtio_pci_state, msix_config, 0),
	TERN_VMS_FIELD_U16(struct virtio_pci_state, queue_sel, 0),
	TERN_VMS_FIELD_U8(struct virtio_pci_state, status, 0),
	TERN_VMS_FIELD_U8(struct virtio_pci_state, config_gen, 0),
	TERN_VMS_FIELD_U8(struct virtio_pci_state, isr, 0),
	TERN_VMS_FIELD_U64(struct virtio_pci_state, pba, 0),
	TERN_VMS_FIELD_ARRAY(struct virtio_pci_state, msix, U32, 0),
	TERN_VMS_FIELD_VARRAY_STRUCT(struct virtio_pci_state, q, num_queues, &queue_desc, 0),
	TERN_VMS_FIELD_END,
};

const struct tern_vmstate_desc virtio_pci_state_desc = {
	.name = "virtio-pci",
	.size = sizeof(struct virtio_pci_state),
	.version = 1,
	.min_version = 1,
	.fields = fields,
};

int virtio_pci_save(struct virtio_pci *vp, struct virtio_pci_state *s, struct tern_error *err)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_lock(&vp->lock);
	pthread_mutex_lock(&vp->msix_lock);
	s->host_features = vp->host_features;
	s->driver_features = vp->driver_features;
	s->dfselect = vp->dfselect;
	s->gfselect = vp->gfselect;
	s->msix_config = vp->msix_config;
	s->queue_sel = vp->queue_sel;
	s->num_queues = vp->num_queues;
	s->status = vp->status;
	s->config_gen = vp->config_gen;
	s->isr = vp->isr;
	s->pba = vp->pba;
	memcpy(s->msix, vp->msix, sizeof s->msix);
	pthread_mutex_unlock(&vp->msix_lock);
	int rc = 0;
	pthread_mutex_lock(vp->vq_lock);
	for (unsigned i = 0; i < vp->num_queues && rc == 0; i++) {
		struct virtio_pci_queue *q = &vp->q[i];
		struct virtio_pci_qstate *qs = &s->q[i];
		qs->size = q->size;
		qs->msix_vector = q->msix_vector;
		qs->enable = q->enable;
		qs->desc = q->desc;
		qs->avail = q->avail;
		qs->used = q->used;
		rc = tern_vq_get_state(q->vq, &qs->vq, err);
		if (rc < 0)
			tern_error_prefix(err, "virtio-pci queue %u", i);
	}
	pthread_mutex_unlock(vp->vq_lock);
	pthread_mutex_unlock(&vp->lock);
	return rc;
}

int virtio_pci_load(struct virtio_pci *vp, const struct virtio_pci_state *s, struct tern_error *err)
{
	if (s->num_queues != vp->num_queues)
		return tern_errorf(err, -EINVAL, "virtio-pci: %u queues saved, the device has %u",
				   s->num_queues, vp->num_queues);
	if (s->host_features != vp->host_features)
		return tern_errorf(err, -EINVAL,
				   "virtio-pci: features %#llx saved, this device offers %#llx "
				   "(a different drive option?)",
				   (unsigned long long)s->host_features,
				   (unsigned long long)vp->host_features);
	if ((s->driver_features & ~s->host_features) != 0)
		return tern_errorf(err, -EINVAL, "virtio-pci: driver features beyond the device's");
	for (unsigned i = 0; i < s->num_queues; i++)
		if (s->q[i].size == 0 || s->q[i].size > vp->queue_max ||
		    (s->q[i].msix_vector >= VIRTIO_PCI_MAX_VECTORS &&
		     s->q[i].msix_vector != VIRTIO_NO_VECTOR))
			return tern_errorf(err, -EINVAL, "virtio-pci: queue %u: bad size or vector", i);
	pthread_mutex_lock(&vp->lock);
	pthread_mutex_lock(&vp->msix_lock);
	vp->driver_features = s->driver_features;
	vp->dfselect = s->dfselect;
	vp->gfselect = s->gfselect;
	vp->msix_config = s->msix_config < VIRTIO_PCI_MAX_VECTORS ? s->msix_config : VIRTIO_NO_VECTOR;
	vp->queue_sel = s->queue_sel;
	vp->status = s->status;
	vp->config_gen = s->config_gen;
	vp->isr = s->isr;
	vp->pba = s->pba & ((1ULL << VIRTIO_PCI_MAX_VECTORS) - 1);
	memcpy(vp->msix, s->msix, sizeof vp->msix);
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_VECTORS; i++)
		vp->msix[i].ctrl &= 1;
	pthread_mutex_unlock(&vp->msix_lock);
	int rc = 0;
	pthread_mutex_lock(vp->vq_lock);
	for (unsigned i = 0; i < vp->num_queues && rc == 0; i++) {
		struct virtio_pci_queue *q = &vp->q[i];
		const struct virtio_pci_qstate *qs = &s->q[i];
		q->size = qs->size;
		q->msix_vector = qs->msix_vector;
		if (q->enable && vp->doorbell != NULL)
			vp->doorbell(vp->doorbell_opaque, i,
				     VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * i, false);
		q->enable = qs->enable != 0;
		if (q->enable && vp->doorbell != NULL)
			vp->doorbell(vp->doorbell_opaque, i,
				     VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * i, true);
		q->desc = qs->desc;
		q->avail = qs->avail;
		q->used = qs->used;
		rc = tern_vq_set_state(q->vq, &qs->vq, err);
		if (rc == 0 && tern_vq_started(q->vq))
			tern_vq_set_notify(q->vq, qs->vq.notify);
		if (rc < 0)
			tern_error_prefix(err, "virtio-pci queue %u", i);
	}
	pthread_mutex_unlock(vp->vq_lock);
	pthread_mutex_unlock(&vp->lock);
	if (rc < 0)
		return rc;
	/* A kick may have been lost in the move: pop once. */
	for (unsigned i = 0; i < vp->num_queues; i++)
		if (vp->q[i].enable && vp->ops->queue_started != NULL)
			vp->ops->queue_started(vp->dev, i);
	return 0;
}
